"""
The syntax tree of the exmta Shell's language (L{exmta.shell.parser} builds
it, L{exmta.shell.runtime} runs it), and the error for text that is not in
the language.  Every node knows where it starts and ends in the text, so
errors can point at the token at fault the way PowerShell does.
"""

import re
from dataclasses import dataclass

from exmta.shell.cmdlet import ScriptBlock


class ShellSyntaxError(Exception):
    """
    The text is not a statement of the Shell's language.

    @ivar message: what is wrong, naming the token (PowerShell's words).
    @ivar line: the line of the fault, from 1.
    @ivar column: the column of the fault, from 1 (PowerShell's C{char:}).
    @ivar incomplete: the text ends before the statement does (an open
        quote, brace or parenthesis, a trailing C{|}): the interactive Shell
        reads another line.
    @ivar origin: the script file's name, when the text came from one.
    """

    origin = None

    def __init__(self, message, source, offset, length=1, incomplete=False):
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset = max(0, min(offset, len(source)))
        self.length = max(1, length)
        self.incomplete = incomplete
        self.line, self.column, self.text = position(source, offset)

    def __str__(self):
        return f"{where(self.source, self.offset, self.length, self.origin)}\n{self.message}"


def position(source, offset):
    """
    @return: C{(line, column, text)}: the 1-based line and column of
        C{offset} in C{source}, and the text of that line.
    """
    lines = re.split(r"\r\n|\r|\n", source[:offset])
    line = len(lines)
    column = len(lines[-1]) + 1
    start = offset - len(lines[-1])
    end = re.search(r"\r|\n|$", source[start:]).start() + start
    return line, column, source[start:end]


def where(source, offset, length=1, origin=None):
    """
    PowerShell's way of showing where a fault is::

        At line:1 char:15
        + Get-Foo -Name "abc
        +               ~~~~

    @param origin: the script file's name, shown instead of C{line}.
    """
    line, column, text = position(source, offset)
    length = max(1, min(length, len(text) - column + 1))
    at = f"{origin}:{line}" if origin else f"line:{line}"
    return f"At {at} char:{column}\n+ {text}\n+ {' ' * (column - 1)}{'~' * length}"


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
class Constant:
    """
    @ivar bareword: an unquoted word of argument mode (C{HubA}).
    """

    value: object
    start: int
    end: int
    bareword: bool = False


@dataclass(frozen=True)
class ExpandableString:
    """
    A double-quoted string: text and the nodes it expands.
    """

    parts: tuple
    start: int
    end: int


@dataclass(frozen=True)
class Variable:
    """
    @ivar name: the name as written, without C{$} or braces (C{mycred},
        C{env:HOME}, C{_}).
    """

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Member:
    """
    C{target.name}, or C{target.name()} when C{call}.
    """

    target: object
    name: str
    call: bool
    start: int
    end: int


@dataclass(frozen=True)
class ArrayLiteral:
    items: tuple
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


# The filter language.


@dataclass(frozen=True)
class Bareword:
    """
    An unquoted word in a filter: a property name on the left of a
    comparison (C{FromAddress -eq "x"}), a string elsewhere.
    """

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Comparison:
    """
    @ivar operator: lower case, without its dash (C{eq}, C{clike}).
    """

    operator: str
    left: object
    right: object
    start: int
    end: int


@dataclass(frozen=True)
class Logical:
    """
    @ivar operator: C{and}, C{or} or C{xor}.
    """

    operator: str
    left: object
    right: object
    start: int
    end: int


@dataclass(frozen=True)
class Not:
    operand: object
    start: int
    end: int
