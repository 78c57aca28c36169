"""
The filter language of script blocks and of Exchange's C{-Filter}
parameter, and how a filter is matched against an object::

    Get-SendConnector | Where-Object {$_.Name -like "To*"}
    Get-Message -Filter {FromAddress -eq "kim@fabrikam.com" -and Status -ne "Suspended"}

    from exmta.shell.filter import parseFilter, matches
    node = parseFilter(filterScriptBlockOrString)       # once; raises ShellSyntaxError
    [message for message in messages if matches(node, message)]

What it reads: comparisons (C{-eq -ne -gt -ge -lt -le -like -notlike
-match -notmatch -contains -notcontains -in -notin}; each also with a C{c}
prefix, case-sensitive, or an C{i} prefix, as the default is
case-insensitive), C{-and}, C{-or}, C{-xor}, C{-not} and C{!}, and
parentheses.  Operands are quoted strings, numbers (C{10MB}), C{$true},
C{$false}, C{$null}, variables with members (C{$_.Name}, C{$PSItem.Name},
C{$sender}), comma lists, and barewords: a bareword on the left of a
comparison, or alone, names a property of the object (Exchange's OPATH
filters: C{FromAddress -eq "x"}); elsewhere it is a string
(C{Status -eq Retry}).

Comparisons follow PowerShell: a string compares with the other side as a
string, a number with the other side as a number; a list on the left
filters (C{-eq} is true when an item equals the right side); C{-like}
takes the wildcards C{*}, C{?} and C{[a-z]}; C{-match} a regular
expression.
"""

import fnmatch
import os
import re

from exmta.shell.cmdlet import ScriptBlock
from exmta.shell.format import getProperty, toText
from exmta.shell.parser import DASHES, QUOTES, _number, _Parser
from exmta.shell.syntax import (
    ArrayLiteral,
    Bareword,
    Comparison,
    Constant,
    ExpandableString,
    Logical,
    Member,
    Not,
    SubExpression,
    Variable,
)

__all__ = ["parseFilter", "matches", "evaluate"]

_COMPARISONS = {
    f"{prefix}{operator}"
    for operator in (
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "like",
        "notlike",
        "match",
        "notmatch",
        "contains",
        "notcontains",
        "in",
        "notin",
    )
    for prefix in ("", "i", "c")
}


def parseFilter(text):
    """
    @param text: a L{ScriptBlock} or a string.
    @return: the root node of the filter.
    @raise ShellSyntaxError: when C{text} is not a filter; its text names
        the token at fault.
    """
    if isinstance(text, ScriptBlock):
        text = text.text
    return _FilterParser(str(text)).filter()


class _FilterParser(_Parser):
    def filter(self):
        self.skipSpace(newlines=True)
        if self.peek() == "":
            self.fail("The filter is empty.")
        node = self.filterOr()
        self.skipSpace(newlines=True)
        if self.peek() != "":
            self.filterUnexpected()
        return node

    def filterUnexpected(self):
        start = self.i
        token = self.filterOperator()
        if token is None:
            if self.peek() in "()":
                token = self.peek()
            else:
                self.bareChunk()
                token = self.s[start : self.i] or self.peek()
        self.fail(f"Unexpected token '{token}' in expression or statement.", start, len(token))

    def filterOperator(self):
        """
        @return: the operator at the position (C{-eq}), as written, without
            moving; or C{None}.
        """
        match = re.match(r"[-\u2013\u2014\u2015][A-Za-z]+", self.s[self.i :])
        return match.group() if match else None

    def filterKeyword(self, names):
        self.skipSpace(newlines=True)
        token = self.filterOperator()
        if token and token[1:].lower() in names:
            self.i += len(token)
            return token[1:].lower()
        return None

    def filterOr(self):
        start = self.i
        left = self.filterAnd()
        while (operator := self.filterKeyword(("or", "xor"))) is not None:
            left = Logical(operator, left, self.filterAnd(), start, self.i)
        return left

    def filterAnd(self):
        start = self.i
        left = self.filterNot()
        while self.filterKeyword(("and",)) is not None:
            left = Logical("and", left, self.filterNot(), start, self.i)
        return left

    def filterNot(self):
        self.skipSpace(newlines=True)
        start = self.i
        if self.peek() == "!" or self.filterKeyword(("not",)):
            if self.peek() == "!":
                self.i += 1
            self.nest(start)
            operand = self.filterNot()
            self.depth -= 1
            return Not(operand, start, self.i)
        return self.filterComparison()

    def filterComparison(self):
        start = self.i
        left = self.filterList()
        while True:
            self.skipSpace(newlines=True)
            token = self.filterOperator()
            if not token or token[1:].lower() not in _COMPARISONS:
                if token and token[1:].lower() not in ("and", "or", "xor", "not"):
                    self.fail(
                        f"Unexpected token '{token}' in expression or statement.",
                        self.i,
                        len(token),
                    )
                return left
            self.i += len(token)
            self.skipSpace(newlines=True)
            if self.peek() in ("", ")"):
                self.fail(f"You must provide a value expression following the '{token}' operator.")
            left = Comparison(token[1:].lower(), left, self.filterList(), start, self.i)

    def filterList(self):
        start = self.i
        items = [self.filterOperand()]
        while True:
            self.skipSpace(newlines=True)
            if self.peek() != ",":
                break
            self.i += 1
            self.skipSpace(newlines=True)
            items.append(self.filterOperand())
        if len(items) == 1:
            return items[0]
        return ArrayLiteral(tuple(items), start, self.i)

    def filterOperand(self):
        self.skipSpace(newlines=True)
        start = self.i
        c = self.peek()
        if c == "(":
            self.nest(start)
            self.i += 1
            node = self.filterOr()
            self.skipSpace(newlines=True)
            if self.peek() != ")":
                if self.peek() == "":
                    self.fail("Missing closing ')' in expression.", start, incomplete=True)
                self.filterUnexpected()
            self.i += 1
            self.depth -= 1
            return node
        if c == "":
            self.fail("You must provide a value expression.", incomplete=True)
        if c in QUOTES:
            return self.quoted()
        if c == "$" and self.varStartsAt(self.i):
            if self.peek(1) == "(":
                self.fail("Subexpressions are not supported in a filter.")
            return self.postfix(self.variable())
        if self.at("),!") or (self.at(DASHES) and self.filterOperator()):
            self.filterUnexpected()
        text = self.bareChunk()
        if not text:
            self.filterUnexpected()
        number = _number(text)
        if number is not None:
            return Constant(number, start, self.i)
        return Bareword(text, start, self.i)


# Matching.

_TRUE_FALSE_NULL = {"true": True, "false": False, "null": None}


def matches(node, value, variables=None, subexpression=None):
    """
    @param node: what L{parseFilter} returned.
    @param value: the object filtered: C{$_}, C{$PSItem}, and the object
        whose properties barewords name.
    @param variables: the Shell's variables, by lower-case name.
    @param subexpression: how to run a C{$(...)} in a string (the Shell's
        runtime); without it, one is an error.
    @return: whether C{value} passes the filter.
    """
    return truthy(evaluate(node, value, variables, subexpression))


def evaluate(node, value=None, variables=None, subexpression=None):
    """
    @return: the value of a filter node for the object C{value}.
    """
    return _Evaluator(value, variables or {}, subexpression).value(node, bareProperty=True)


def truthy(value):
    """
    PowerShell's truth: C{$null}, C{0}, C{""} and empty lists are false; a
    list of one item is as true as its item.
    """
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return truthy(value[0])
        return len(value) > 0
    return bool(value)


class FilterError(ValueError):
    """
    A filter could not be evaluated (a regular expression that is not one).
    """


class _Evaluator:
    def __init__(self, current, variables, subexpression):
        self.current = current
        self.variables = variables
        self.subexpression = subexpression

    def value(self, node, bareProperty=False):
        if isinstance(node, Constant):
            return node.value
        if isinstance(node, Bareword):
            if bareProperty:
                return getProperty(self.current, node.text)
            return node.text
        if isinstance(node, Variable):
            return self.variable(node.name)
        if isinstance(node, Member):
            target = self.value(node.target)
            return member(target, node.name, node.call)
        if isinstance(node, ExpandableString):
            return "".join(
                part if isinstance(part, str) else toText(self.value(part)) for part in node.parts
            )
        if isinstance(node, SubExpression):
            if self.subexpression is None:
                raise FilterError("Subexpressions are not supported in a filter.")
            return self.subexpression(node)
        if isinstance(node, ArrayLiteral):
            return tuple(self.value(item) for item in node.items)
        if isinstance(node, Not):
            return not truthy(self.value(node.operand, bareProperty=True))
        if isinstance(node, Logical):
            left = truthy(self.value(node.left, bareProperty=True))
            if node.operator == "and" and not left:
                return False
            if node.operator == "or" and left:
                return True
            right = truthy(self.value(node.right, bareProperty=True))
            return left != right if node.operator == "xor" else right
        if isinstance(node, Comparison):
            left = self.value(node.left, bareProperty=True)
            right = self.value(node.right)
            return compare(node.operator, left, right)
        raise FilterError(f"Cannot evaluate {type(node).__name__} in a filter.")

    def variable(self, name):
        lower = name.lower()
        if lower in ("_", "psitem"):
            return self.current
        if lower in _TRUE_FALSE_NULL:
            return _TRUE_FALSE_NULL[lower]
        return lookupVariable(self.variables, name)


def lookupVariable(variables, name):
    """
    @return: the variable C{name} ($env:NAME, $global:name...) or C{None}.
    """
    lower = name.lower()
    if lower in _TRUE_FALSE_NULL:
        return _TRUE_FALSE_NULL[lower]
    scope, _, rest = lower.partition(":")
    if rest:
        if scope == "env":
            return os.environ.get(name.partition(":")[2])
        lower = rest
    return variables.get(lower)


def member(target, name, call=False):
    """
    C{target.name}: a property, or each item's property for a list
    (PowerShell's member enumeration); C{call} calls a method.
    """
    if isinstance(target, (list, tuple)) and not hasattr(target, "_asdict"):
        if name.lower() in ("count", "length"):
            return len(target)
        return tuple(member(item, name, call) for item in target)
    if isinstance(target, str) and name.lower() == "length":
        return len(target)
    found = getProperty(target, name)
    if call:
        if not callable(found):
            raise FilterError(
                f"Method invocation failed because the object does not contain a method named '{name}'."
            )
        return found()
    return found


_BASE = {
    "eq",
    "ne",
    "gt",
    "ge",
    "lt",
    "le",
    "like",
    "notlike",
    "match",
    "notmatch",
    "contains",
    "notcontains",
    "in",
    "notin",
}


def compare(operator, left, right):
    """
    PowerShell's comparison operators (without their dash: C{eq},
    C{clike}).
    """
    operator = operator.lower()
    caseSensitive = False
    if operator not in _BASE and operator[1:] in _BASE:
        caseSensitive = operator[0] == "c"
        operator = operator[1:]
    if operator in ("contains", "notcontains"):
        items = left if _isList(left) else (left,)
        found = any(_equal(item, right, caseSensitive) for item in items)
        return found if operator == "contains" else not found
    if operator in ("in", "notin"):
        items = right if _isList(right) else (right,)
        found = any(_equal(item, left, caseSensitive) for item in items)
        return found if operator == "in" else not found
    if _isList(left):
        return tuple(
            item for item in left if compare(("c" if caseSensitive else "") + operator, item, right)
        )
    if operator in ("eq", "ne"):
        return _equal(left, right, caseSensitive) == (operator == "eq")
    if operator in ("gt", "ge", "lt", "le"):
        if left is None or right is None:
            order = (left is not None) - (right is not None)
        else:
            order = _order(left, right, caseSensitive)
        return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0}[operator]
    if operator in ("like", "notlike"):
        pattern = fnmatch.translate(toText(right))
        found = (
            re.match(pattern, toText(left), 0 if caseSensitive else re.IGNORECASE | re.DOTALL)
            is not None
        )
        return found == (operator == "like")
    # match, notmatch
    try:
        found = (
            re.search(toText(right), toText(left), 0 if caseSensitive else re.IGNORECASE)
            is not None
        )
    except re.error as error:
        raise FilterError(
            f"The regular expression pattern {toText(right)} is not valid: {error}."
        ) from None
    return found == (operator == "match")


def _isList(value):
    return isinstance(value, (list, tuple, set, frozenset)) and not hasattr(value, "_asdict")


def _asNumber(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        number = _number(value.strip())
        if number is not None:
            return number
    return None


def _text(value, caseSensitive):
    text = toText(value)
    return text if caseSensitive else text.casefold()


def _equal(left, right, caseSensitive):
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool):
        return left == truthy(right)
    if isinstance(left, (int, float)):
        number = _asNumber(right)
        if number is not None:
            return left == number
    if isinstance(left, str) or isinstance(right, str):
        return _text(left, caseSensitive) == _text(right, caseSensitive)
    try:
        if left == right:
            return True
    except Exception:  # noqa: BLE001 - objects may compare badly; then as text
        pass
    return _text(left, caseSensitive) == _text(right, caseSensitive)


def _order(left, right, caseSensitive):
    if isinstance(left, (int, float)) and not isinstance(left, bool):
        number = _asNumber(right)
        if number is not None:
            return (left > number) - (left < number)
    if not isinstance(left, str):
        try:
            return (left > right) - (left < right)
        except TypeError:
            pass
    a, b = _text(left, caseSensitive), _text(right, caseSensitive)
    return (a > b) - (a < b)
