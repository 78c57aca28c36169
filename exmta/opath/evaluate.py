"""
How a filter (L{exmta.opath.parser}) is evaluated against an object, with
PowerShell's semantics: what Where-Object and ForEach-Object do in the
Shell.  Exchange's C{-Filter} (L{exmta.opath.query}) evaluates the same
way, with OPATH's comparisons.

Comparisons follow PowerShell: a string compares with the other side as a
string, a number with the other side as a number; a list on the left
filters (C{-eq} is true when an item equals the right side); C{-like}
takes the wildcards C{*}, C{?} and C{[a-z]}; C{-match} a regular
expression.  A bareword on the left of a comparison, or alone, names a
property of the object; elsewhere it is a string.

An L{Evaluator} reads objects through two functions its user gives: one
that reads a property (the Shell's reads dataclasses, mappings and
attributes, case-insensitively) and one that makes a value text.
"""

import fnmatch
import os
import re

from exmta.opath.parser import OPERATORS
from exmta.opath.reader import parseNumber
from exmta.opath.syntax import (
    ArrayLiteral,
    Bareword,
    Comparison,
    Constant,
    ExpandableString,
    Logical,
    Member,
    Not,
    Variable,
)

_TRUE_FALSE_NULL = {"true": True, "false": False, "null": None}


class FilterError(ValueError):
    """
    A filter that cannot be evaluated (a regular expression that is not
    one), or that a C{-Filter} does not take (L{exmta.opath.query}).
    """


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


def chain(node):
    """
    @return: the operands of a chain of one logical operator (C{a -and b
        -and c}, deep on its left as the parser builds it), in order.
    """
    operands = []
    while isinstance(node, Logical):
        operator = node.operator
        operands.append(node.right)
        node = node.left
        if not (isinstance(node, Logical) and node.operator == operator):
            break
    operands.append(node)
    return operands[::-1]


class Evaluator:
    """
    Evaluates filters over the objects its two functions read.
    """

    def __init__(self, getProperty, toText, callMethod=None):
        """
        @param getProperty: a value's property, from (value, name), or
            L{None}.
        @param toText: a value (not L{None}, a string or a list) as text.
        @param callMethod: calls a value's method without arguments, from
            (value, name) (C{$_.Name.ToUpper()}); without it, a method is
            a property that can be called.
        """
        self._getProperty = getProperty
        self._toText = toText
        self._callMethod = callMethod

    def matches(self, node, value, variables=None):
        """
        @param node: what L{exmta.opath.parser.parseFilter} returned.
        @param value: the object filtered: C{$_}, C{$PSItem}, and the object
            whose properties barewords name.
        @param variables: the variables, by lower-case name.
        @return: whether C{value} passes the filter.
        """
        return truthy(self.evaluate(node, value, variables))

    def evaluate(self, node, value=None, variables=None):
        """
        @return: the value of a filter node for the object C{value}.
        """
        return self.value(node, value, variables or {}, bareProperty=True)

    def value(self, node, current, variables, bareProperty=False):
        if isinstance(node, Constant):
            return node.value
        if isinstance(node, Bareword):
            if bareProperty:
                return self._getProperty(current, node.text)
            return node.text
        if isinstance(node, Variable):
            lower = node.name.lower()
            if lower in ("_", "psitem"):
                return current
            return lookupVariable(variables, node.name)
        if isinstance(node, Member):
            target = self.value(node.target, current, variables)
            return self.member(target, node.name, node.call)
        if isinstance(node, ExpandableString):
            return "".join(
                part if isinstance(part, str) else self.text(self.value(part, current, variables))
                for part in node.parts
            )
        if isinstance(node, ArrayLiteral):
            return tuple(self.value(item, current, variables) for item in node.items)
        if isinstance(node, Not):
            return not truthy(self.value(node.operand, current, variables, bareProperty=True))
        if isinstance(node, Logical):
            return self.logical(node, current, variables)
        if isinstance(node, Comparison):
            return self.comparison(node, current, variables)
        raise FilterError(f"Cannot evaluate {type(node).__name__} in a filter.")

    def logical(self, node, current, variables):
        """
        C{-and} and C{-or} stop at the first operand that decides; C{-xor}
        is true when an odd number of its operands are.
        """
        result = None
        for operand in chain(node):
            true = truthy(self.value(operand, current, variables, bareProperty=True))
            if node.operator == "and" and not true:
                return False
            if node.operator == "or" and true:
                return True
            result = true if result is None or node.operator != "xor" else result != true
        return result

    def comparison(self, node, current, variables):
        left = self.value(node.left, current, variables, bareProperty=True)
        right = self.value(node.right, current, variables)
        return self.compare(node.operator, left, right)

    def text(self, value):
        """
        PowerShell's conversion of a value to a string: lists joined by
        spaces, C{$null} empty.
        """
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple, set, frozenset)):
            return " ".join(self.text(item) for item in value)
        return self._toText(value)

    def member(self, target, name, call=False):
        """
        C{target.name}: a property, or each item's property for a list
        (PowerShell's member enumeration); C{call} calls a method.
        """
        if isinstance(target, (list, tuple)) and not hasattr(target, "_asdict"):
            if name.lower() in ("count", "length"):
                return len(target)
            return tuple(self.member(item, name, call) for item in target)
        if isinstance(target, str) and name.lower() == "length":
            return len(target)
        if call and self._callMethod is not None:
            return self._callMethod(target, name)
        found = self._getProperty(target, name)
        if call:
            if not callable(found):
                raise FilterError(
                    f"Method invocation failed because the object does not contain a method named '{name}'."
                )
            return found()
        return found

    def compare(self, operator, left, right):
        """
        PowerShell's comparison operators (without their dash: C{eq},
        C{clike}).
        """
        operator = operator.lower()
        caseSensitive = False
        if operator not in OPERATORS and operator[1:] in OPERATORS:
            caseSensitive = operator[0] == "c"
            operator = operator[1:]
        if operator in ("contains", "notcontains"):
            items = left if _isList(left) else (left,)
            found = any(self._equal(item, right, caseSensitive) for item in items)
            return found if operator == "contains" else not found
        if operator in ("in", "notin"):
            items = right if _isList(right) else (right,)
            found = any(self._equal(item, left, caseSensitive) for item in items)
            return found if operator == "in" else not found
        if _isList(left):
            return tuple(
                item
                for item in left
                if self.compare(("c" if caseSensitive else "") + operator, item, right)
            )
        if operator in ("eq", "ne"):
            return self._equal(left, right, caseSensitive) == (operator == "eq")
        if operator in ("gt", "ge", "lt", "le"):
            if left is None or right is None:
                order = (left is not None) - (right is not None)
            else:
                order = self._order(left, right, caseSensitive)
            return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0}[operator]
        if operator in ("like", "notlike"):
            pattern = fnmatch.translate(self.text(right))
            found = (
                re.match(pattern, self.text(left), 0 if caseSensitive else re.IGNORECASE | re.DOTALL)
                is not None
            )
            return found == (operator == "like")
        # match, notmatch
        try:
            found = (
                re.search(self.text(right), self.text(left), 0 if caseSensitive else re.IGNORECASE)
                is not None
            )
        except re.error as error:
            raise FilterError(
                f"The regular expression pattern {self.text(right)} is not valid: {error}."
            ) from None
        return found == (operator == "match")

    def _caseText(self, value, caseSensitive):
        text = self.text(value)
        return text if caseSensitive else text.casefold()

    def _equal(self, left, right, caseSensitive):
        if left is None or right is None:
            return left is None and right is None
        if isinstance(left, bool):
            return left == truthy(right)
        if isinstance(left, (int, float)):
            number = _asNumber(right)
            if number is not None:
                return left == number
        if isinstance(left, str) or isinstance(right, str):
            return self._caseText(left, caseSensitive) == self._caseText(right, caseSensitive)
        try:
            if left == right:
                return True
        except Exception:  # noqa: BLE001 - objects may compare badly; then as text
            pass
        return self._caseText(left, caseSensitive) == self._caseText(right, caseSensitive)

    def _order(self, left, right, caseSensitive):
        if isinstance(left, (int, float)) and not isinstance(left, bool):
            number = _asNumber(right)
            if number is not None:
                return (left > number) - (left < number)
        if not isinstance(left, str):
            try:
                return (left > right) - (left < right)
            except TypeError:
                pass
        a, b = self._caseText(left, caseSensitive), self._caseText(right, caseSensitive)
        return (a > b) - (a < b)


def _isList(value):
    return isinstance(value, (list, tuple, set, frozenset)) and not hasattr(value, "_asdict")


def _asNumber(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        parsed = parseNumber(value.strip())
        if parsed is not None:
            return parsed
    return None
