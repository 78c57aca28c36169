"""
The syntax tree of the exmta Shell's language (L{exmta.shell.parser} builds
it, L{exmta.shell.runtime} runs it), and the error for text that is not in
the language.  Every node knows where it starts and ends in the text, so
errors can point at the token at fault the way PowerShell does.  The
values it shares with filters (constants, strings, variables, members,
lists) are L{exmta.opath.syntax}'s.
"""

from dataclasses import dataclass

from exmta.opath.syntax import PowerShellSyntaxError
from exmta.shell.cmdlet import ScriptBlock


class ShellSyntaxError(PowerShellSyntaxError):
    """
    The text is not a statement of the Shell's language.
    """


@dataclass(frozen=True)
class Script:
    statements: tuple
    source: str


@dataclass(frozen=True)
class Pipeline:
    """
    @ivar elements: L{Command}s; the first may be an expression instead.
    @ivar assignTo: the name of the variable the output is assigned to.
    """

    elements: tuple
    assignTo: str | None
    start: int
    end: int


@dataclass(frozen=True)
class Command:
    """
    @ivar elements: L{CommandParameter}s and the expressions of positional
        arguments, in order.
    """

    name: str
    elements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class CommandParameter:
    """
    C{-Name}, C{-Name value} is a parameter then an argument; C{-Name:value}
    holds its argument.

    @ivar colon: written with a colon (C{-Name:value}, C{-Name:}).
    """

    name: str
    argument: object
    colon: bool
    start: int
    end: int


@dataclass(frozen=True)
class Paren:
    pipeline: object
    start: int
    end: int


@dataclass(frozen=True)
class SubExpression:
    """
    C{$(statements)}.
    """

    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class ArrayExpression:
    """
    C{@(statements)}: always an array.
    """

    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class HashLiteral:
    """
    C{@{Key = value; ...}}: keys as text, values as nodes.
    """

    pairs: tuple
    start: int
    end: int


@dataclass(frozen=True)
class ScriptBlockLiteral:
    block: ScriptBlock
    start: int
    end: int


@dataclass(frozen=True)
class Composite:
    """
    Adjacent pieces of one argument (C{a"b"$c}), joined as text.
    """

    pieces: tuple
    start: int
    end: int


# Operators and the members of values.


@dataclass(frozen=True)
class Binary:
    """
    C{left OP right}: C{operator} is lower case, without its dash
    (C{eq}, C{clike}, C{and}, C{+}, C{..}, C{f}).
    """

    operator: str
    left: object
    right: object
    start: int
    end: int


@dataclass(frozen=True)
class Unary:
    """
    C{-not x}, C{!x} (operator C{not}), C{-x} (C{-}), C{+x} (C{+}).
    """

    operator: str
    operand: object
    start: int
    end: int


@dataclass(frozen=True)
class Index:
    """
    C{target[index]}.
    """

    target: object
    index: object
    start: int
    end: int


@dataclass(frozen=True)
class MethodCall:
    """
    C{target.Name(arguments)}; C{static} for C{[type]::Name(...)}.
    """

    target: object
    name: str
    arguments: tuple
    start: int
    end: int


@dataclass(frozen=True)
class TypeLiteral:
    """
    C{[datetime]}: the type's name as written, without the brackets.
    """

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class StaticMember:
    """
    C{[type]::Name}, or C{[type]::Name(arguments)} when C{arguments} is
    not C{None}.
    """

    type: TypeLiteral
    name: str
    arguments: tuple | None
    start: int
    end: int


@dataclass(frozen=True)
class Cast:
    """
    C{[type]operand}.
    """

    type: TypeLiteral
    operand: object
    start: int
    end: int


# Statements beyond pipelines.


@dataclass(frozen=True)
class Assignment:
    """
    C{target OP value} where the target is not a plain variable
    (C{$h.Key = 1}, C{$a[0] = 1}) or the operator is compound (C{+=},
    C{-=}, C{*=}, C{/=}); a plain C{$x = ...} is a L{Pipeline}'s
    C{assignTo}.
    """

    target: object
    operator: str
    value: object
    start: int
    end: int


@dataclass(frozen=True)
class If:
    """
    @ivar clauses: C{(condition, statements)} pairs: the C{if}, then each
        C{elseif}.
    @ivar otherwise: the statements of C{else}, or C{None}.
    """

    clauses: tuple
    otherwise: tuple | None
    start: int
    end: int


@dataclass(frozen=True)
class ForEach:
    """
    C{foreach ($variable in collection) { statements }}.
    """

    variable: str
    collection: object
    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class While:
    condition: object
    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class ParameterDeclaration:
    """
    One parameter of a function: C{[Parameter(Mandatory=$true)][int]$Size = 10}.

    @ivar typeName: the type written before it (C{int}, C{switch}), or
        C{None}.
    @ivar default: the node of its default value, or C{None}.
    """

    name: str
    typeName: str | None
    default: object
    mandatory: bool
    pipeline: bool
    start: int
    end: int


@dataclass(frozen=True)
class FunctionDefinition:
    """
    C{function Name { param(...) statements }} or C{function Name($a, $b) {...}}.
    """

    name: str
    parameters: tuple
    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class Catch:
    """
    @ivar types: the names of the error types it catches; none for all.
    """

    types: tuple
    statements: tuple
    start: int
    end: int


@dataclass(frozen=True)
class Try:
    statements: tuple
    catches: tuple
    final: tuple | None
    start: int
    end: int


@dataclass(frozen=True)
class Flow:
    """
    C{throw}, C{return}, C{break} or C{continue} (C{keyword}), with the
    value thrown or returned, or C{None}.
    """

    keyword: str
    value: object
    start: int
    end: int
