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
