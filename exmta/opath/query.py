"""
Exchange's C{-Filter} (OPATH) over rows, as Get-Queue and Get-Message take
it on the server (L{exmta.admin.commands}): the filter language
(L{exmta.opath.parser}) restricted to what OPATH says, compared OPATH's
way, with Exchange's error messages.

What it takes: C{Property -op Value} comparisons (C{-eq -ne -like -notlike
-gt -ge -lt -le -contains -notcontains}) joined by C{-and}, C{-or} and
C{-xor} (C{-and} binds tighter), negated by C{-not} or C{!}, grouped by
parentheses.  A property is one of the row's; a value is a quoted string,
a number (C{10KB} is 10240), C{$true}, C{$false}, C{$null} or a bare word.
The surrounding braces of a script block are optional.

How it compares, where OPATH is not PowerShell (L{exmta.opath.evaluate}):
text compares case-insensitively as text; a number property compares with
the value as a number when it is one; a list property (C{Recipients})
matches when any of its items does, and C{-ne}, C{-notlike} and
C{-notcontains} when none does; date properties compare as dates, and a
value that is not a date is refused when the filter is read; an empty
property is neither greater nor less than anything, and like nothing.
"""

import fnmatch
from datetime import datetime

from exmta.opath.evaluate import Evaluator, FilterError, chain
from exmta.opath.parser import parseFilter, tokenAt
from exmta.opath.syntax import (
    EMPTY,
    MISSING_OPERAND,
    NOT_CLOSED,
    UNEXPECTED,
    ArrayLiteral,
    Bareword,
    Comparison,
    Constant,
    ExpandableString,
    FilterSyntaxError,
    Logical,
    Member,
    Not,
    Variable,
)

_OPERATORS = {"eq", "ne", "like", "notlike", "gt", "ge", "lt", "le", "contains", "notcontains"}
_CONSTANTS = {"true": True, "false": False, "null": None}
_TEXT = {True: "True", False: "False", None: ""}


def parseQuery(text, properties, dates=()):
    """
    Read a C{-Filter}.

    @param properties: the names of the rows' properties it may use.
    @param dates: those of them that are dates (ISO 8601 text in the rows).
    @return: a predicate over a row (a dict).
    @raise FilterError: naming what is wrong.
    """
    text = str(text).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    try:
        node = parseFilter(text)
    except FilterSyntaxError as error:
        raise FilterError(_message(error)) from None
    names = {name.lower(): name for name in properties}
    node = _Checker(text, names, frozenset(dates)).check(node)
    evaluator = _OpathEvaluator(frozenset(dates))
    return lambda row: evaluator.matches(node, row)


def parseDateTime(value):
    """
    A date as the Shell takes one: ISO 8601 (C{2026-01-01T10:00:00Z}; local
    time without an offset) or the U.S. forms Exchange's examples use
    (C{1/31/2026 10:00 AM}, C{1/31/2026}), in local time.

    @param value: a string, a L{datetime} or seconds since the epoch.
    @return: seconds since the epoch.
    @raise ValueError: for anything else.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
        for pattern in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        if parsed is None:
            raise ValueError(f"{text!r} is not a date and time") from None
    return parsed.timestamp()


_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)


# Exchange's words for what is wrong.


def _message(error):
    """
    @return: a filter syntax error in Exchange's words.
    """
    if error.problem == EMPTY:
        return "The filter is empty"
    if error.problem == NOT_CLOSED:
        return "Invalid filter syntax: a ( is not closed"
    if error.problem in (UNEXPECTED, MISSING_OPERAND):
        return _expected(error.after, tokenAt(error.source, error.offset))
    return f"Invalid filter syntax at {error.source[error.offset :].strip()!r}"


def _expected(after, found):
    """
    @param after: what was read before the fault (see
        L{FilterSyntaxError.after}).
    """
    if isinstance(after, str):
        return f"Invalid filter syntax: expected a value after {after}, found {found}"
    if isinstance(after, Bareword):
        return (
            f"Invalid filter syntax: expected a comparison such as -eq after {after.text}, "
            f"found {found}"
        )
    if after is None:
        return f"Invalid filter syntax: expected a property name, found {found}"
    return f"Invalid filter syntax at {found}"


class _Checker:
    """
    Refuses the filters OPATH does not take; returns the filter with
    property names as the rows spell them.
    """

    def __init__(self, source, names, dates):
        self.source = source
        self.names = names
        self.dates = dates

    def fail(self, message):
        raise FilterError(message)

    def check(self, node):
        # A variable a filter cannot have is named before anything else
        # that is wrong, wherever it is.
        for variable in _variables(node):
            self.constant(variable)
        return self.checked(node)

    def checked(self, node):
        if isinstance(node, Logical):
            # A long -and or -or chain is deep on its left: not a recursion.
            first, *others = chain(node)
            checked = self.checked(first)
            for operand in others:
                checked = Logical(
                    node.operator, checked, self.checked(operand), node.start, operand.end
                )
            return checked
        if isinstance(node, Not):
            return Not(self.checked(node.operand), node.start, node.end)
        if isinstance(node, Comparison):
            return self.comparison(node)
        if isinstance(node, Bareword):
            self.property(node)
            self.fail(_expected(node, tokenAt(self.source, node.end)))
        self.fail(_expected(None, tokenAt(self.source, node.start)))

    def property(self, node):
        name = self.names.get(node.text.lower())
        if name is None:
            self.fail(
                f"{node.text} is not a property that can be filtered on; use one of "
                + ", ".join(sorted(self.names.values()))
            )
        return name

    def comparison(self, node):
        if not isinstance(node.left, Bareword):
            if isinstance(node.left, Comparison):
                self.fail(_expected(node.left, tokenAt(self.source, node.left.end)))
            self.fail(_expected(None, tokenAt(self.source, node.left.start)))
        name = self.property(node.left)
        if node.operator not in _OPERATORS:
            self.fail(_expected(node.left, tokenAt(self.source, node.left.end)))
        operand = self.operand(node.right)
        if name in self.dates and operand is not None and node.operator not in ("like", "notlike"):
            try:
                parseDateTime(operand)
            except ValueError as error:
                self.fail(f"Cannot compare {name} with {operand!r}: {error}")
        return Comparison(
            node.operator,
            Bareword(name, node.left.start, node.left.end),
            Constant(operand, node.right.start, node.right.end),
            node.start,
            node.end,
        )

    def operand(self, node):
        """
        @return: the value of a comparison's right side.
        """
        if isinstance(node, Constant):
            return node.value
        if isinstance(node, Bareword):
            return node.text
        if isinstance(node, Variable):
            return self.constant(node)
        if isinstance(node, ExpandableString):
            # PowerShell's expansion, of the only variables a filter has.
            return "".join(
                part if isinstance(part, str) else _TEXT[self.constant(part)] for part in node.parts
            )
        if isinstance(node, Member):
            target = node.target
            while isinstance(target, Member):
                target = target.target
            offset = target.end
        elif isinstance(node, ArrayLiteral):
            offset = node.items[0].end
        else:
            offset = node.start
        self.fail(f"Invalid filter syntax at {tokenAt(self.source, offset)}")

    def constant(self, variable):
        """
        @return: the value of C{$true}, C{$false} or C{$null}.
        """
        name = variable.name.lower()
        if name not in _CONSTANTS:
            self.fail(f"Unknown variable ${variable.name} in the filter")
        return _CONSTANTS[name]


def _variables(node):
    """
    @return: the variables of a filter, in order.
    """
    found = []
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, Variable):
            found.append(node)
        elif isinstance(node, Member):
            pending.append(node.target)
        elif isinstance(node, ExpandableString):
            pending.extend(reversed([part for part in node.parts if isinstance(part, Variable)]))
        elif isinstance(node, ArrayLiteral):
            pending.extend(reversed(node.items))
        elif isinstance(node, (Comparison, Logical)):
            pending.extend((node.right, node.left))
        elif isinstance(node, Not):
            pending.append(node.operand)
    return found


class _OpathEvaluator(Evaluator):
    """
    The evaluation of a checked filter, with OPATH's comparisons.
    """

    def __init__(self, dates):
        super().__init__(dict.get, str)
        self.dates = dates

    def comparison(self, node, current, variables):
        name, operator, operand = node.left.text, node.operator, node.right.value
        value = current.get(name)
        if isinstance(value, (list, tuple)):
            if operator in ("ne", "notlike", "notcontains"):
                positive = {"ne": "eq", "notlike": "like", "notcontains": "eq"}[operator]
                return not any(self._compareOne(name, positive, item, operand) for item in value)
            actual = "eq" if operator == "contains" else operator
            return any(self._compareOne(name, actual, item, operand) for item in value)
        if operator in ("contains", "notcontains"):
            equal = self._compareOne(name, "eq", value, operand)
            return equal if operator == "contains" else not equal
        return self._compareOne(name, operator, value, operand)

    def _compareOne(self, name, operator, left, right):
        if operator in ("like", "notlike"):
            matched = left is not None and fnmatch.fnmatchcase(str(left).lower(), str(right).lower())
            return matched if operator == "like" else not matched
        try:
            left, right = self._coerce(name, left, right)
        except ValueError as error:
            raise FilterError(f"Cannot compare {name} with {right!r}: {error}") from None
        if operator == "eq":
            return left == right
        if operator == "ne":
            return left != right
        if left is None or right is None:
            return False
        try:
            if operator == "gt":
                return left > right
            if operator == "ge":
                return left >= right
            if operator == "lt":
                return left < right
            return left <= right
        except TypeError:
            return False

    def _coerce(self, name, left, right):
        """
        @return: (left, right) made comparable: dates as epoch seconds,
            numbers as numbers, the rest as lower-case text.
        """
        if left is None or right is None:
            return left, right
        if name in self.dates:
            return parseDateTime(left), parseDateTime(right)
        if isinstance(left, bool) or isinstance(right, bool):
            return str(left).lower(), str(right).lower()
        if isinstance(left, (int, float)):
            try:
                return left, float(right)
            except (TypeError, ValueError):
                return str(left).lower(), str(right).lower()
        return str(left).lower(), str(right).lower()
