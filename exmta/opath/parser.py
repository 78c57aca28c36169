"""
The filter grammar (L{exmta.opath}'s docstring says what it reads), on
PowerShell's tokens (L{exmta.opath.reader}).

    filter     := or
    or         := and (("-or" | "-xor") and)*
    and        := not ("-and" not)*
    not        := ("-not" | "!") not | comparison
    comparison := list (COMPARISON list)*
    list       := operand ("," operand)*
    operand    := "(" or ")" | string | variable members | number | bareword
"""

import re

from exmta.opath.reader import DASHES, QUOTES, Reader, parseNumber
from exmta.opath.syntax import (
    EMPTY,
    MISSING_OPERAND,
    NOT_CLOSED,
    UNEXPECTED,
    ArrayLiteral,
    Bareword,
    Comparison,
    Constant,
    FilterSyntaxError,
    Logical,
    Not,
)

# The comparison operators, without their dash; each also with a C{c}
# prefix (case-sensitive) or an C{i} prefix (case-insensitive, the default).
OPERATORS = (
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
_COMPARISONS = {f"{prefix}{operator}" for operator in OPERATORS for prefix in ("", "i", "c")}


def parseFilter(text):
    """
    @param text: the filter, without the braces of a script block.
    @return: the root node of the filter.
    @raise FilterSyntaxError: when C{text} is not a filter; its text names
        the token at fault.
    """
    return _FilterParser(str(text)).filter()


def tokenAt(source, offset):
    """
    @return: the token of a filter at C{offset}, as an error names it:
        C{"the end of the filter"}, a parenthesis or punctuation, an
        operator as written (C{-eq}), or the text or value of a word or a
        string, quoted.
    """
    reader = _FilterParser(source)
    reader.i = offset
    try:
        reader.skipSpace(newlines=True)
        start = reader.i
        c = reader.peek()
        if c == "":
            return "the end of the filter"
        if c in "(),!":
            return c
        operator = reader.filterOperator()
        if operator:
            return operator
        if c == "$" and reader.varStartsAt(start):
            if reader.peek(1) != "(":
                reader.postfix(reader.variable())
                return source[start : reader.i]
        if c in QUOTES:
            token = reader.quoted()
            if isinstance(token, Constant):
                return repr(token.value)
            return repr(source[start : reader.i])
        return repr(reader.bareChunk() or c)
    except FilterSyntaxError:
        return repr(source[offset:].strip())


class _FilterParser(Reader):
    syntaxError = FilterSyntaxError

    def subexpression(self):
        self.fail("Subexpressions are not supported in a filter.")

    def filter(self):
        self.skipSpace(newlines=True)
        if self.peek() == "":
            self.fail("The filter is empty.", problem=EMPTY)
        node = self.filterOr()
        self.skipSpace(newlines=True)
        if self.peek() != "":
            self.filterUnexpected(node)
        return node

    def filterUnexpected(self, after):
        start = self.i
        token = self.filterOperator()
        if token is None:
            if self.peek() in "()":
                token = self.peek()
            else:
                self.bareChunk()
                token = self.s[start : self.i] or self.peek()
        self.fail(
            f"Unexpected token '{token}' in expression or statement.",
            start,
            len(token),
            problem=UNEXPECTED,
            after=after,
        )

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
        left = self.filterList(None)
        while True:
            self.skipSpace(newlines=True)
            token = self.filterOperator()
            if not token or token[1:].lower() not in _COMPARISONS:
                if token and token[1:].lower() not in ("and", "or", "xor", "not"):
                    self.fail(
                        f"Unexpected token '{token}' in expression or statement.",
                        self.i,
                        len(token),
                        problem=UNEXPECTED,
                        after=left,
                    )
                return left
            self.i += len(token)
            self.skipSpace(newlines=True)
            if self.peek() in ("", ")"):
                self.fail(
                    f"You must provide a value expression following the '{token}' operator.",
                    problem=MISSING_OPERAND,
                    after=token,
                )
            left = Comparison(token[1:].lower(), left, self.filterList(token), start, self.i)

    def filterList(self, after):
        """
        @param after: the operator before the list, as written, or L{None}.
        """
        start = self.i
        items = [self.filterOperand(after)]
        while True:
            self.skipSpace(newlines=True)
            if self.peek() != ",":
                break
            self.i += 1
            self.skipSpace(newlines=True)
            items.append(self.filterOperand(","))
        if len(items) == 1:
            return items[0]
        return ArrayLiteral(tuple(items), start, self.i)

    def filterOperand(self, after):
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
                    self.fail(
                        "Missing closing ')' in expression.",
                        start,
                        incomplete=True,
                        problem=NOT_CLOSED,
                    )
                self.filterUnexpected(node)
            self.i += 1
            self.depth -= 1
            return node
        if c == "":
            self.fail(
                "You must provide a value expression.",
                incomplete=True,
                problem=MISSING_OPERAND,
                after=after,
            )
        if c in QUOTES:
            return self.quoted()
        if c == "$" and self.varStartsAt(self.i):
            if self.peek(1) == "(":
                self.fail("Subexpressions are not supported in a filter.")
            return self.postfix(self.variable())
        if self.at("),!") or (self.at(DASHES) and self.filterOperator()):
            self.filterUnexpected(after)
        text = self.bareChunk()
        if not text:
            self.filterUnexpected(after)
        value = parseNumber(text)
        if value is not None:
            return Constant(value, start, self.i)
        return Bareword(text, start, self.i)
