"""
The syntax tree of filters (L{exmta.opath.parser} builds it,
L{exmta.opath.evaluate} and L{exmta.opath.query} evaluate it), the values
the Shell's language shares with them, and the error for text that is not
in PowerShell's syntax.  Every node knows where it starts and ends in the
text, so errors can point at the token at fault the way PowerShell does.
"""

import re
from dataclasses import dataclass

# What a filter's syntax error is about, for those who word it their own
# way (Exchange's -Filter, L{exmta.opath.query}).
EMPTY = "empty"
UNEXPECTED = "unexpected"
MISSING_OPERAND = "missing operand"
NOT_CLOSED = "not closed"


class PowerShellSyntaxError(Exception):
    """
    The text is not in the language read (the Shell's, a filter's).

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


class FilterSyntaxError(PowerShellSyntaxError):
    """
    The text is not a filter.

    @ivar problem: L{EMPTY}, L{UNEXPECTED} (a token where it cannot be),
        L{MISSING_OPERAND} (the text or a group ends where an operand is
        due), L{NOT_CLOSED} (a parenthesis), or L{None} for a fault in a
        token itself (an unterminated string, say).
    @ivar after: what was read before the fault: the node before it, the
        operator or comma (as written) whose operand is missing, or L{None}
        where an operand was due.
    """

    def __init__(self, message, source, offset, length=1, incomplete=False, problem=None, after=None):
        super().__init__(message, source, offset, length, incomplete)
        self.problem = problem
        self.after = after


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


# Values.


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


# Filters.


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
