"""
Expression mode of the Shell's language (L{exmta.shell.parser} reads the
statements and commands around it): values, their members and PowerShell's
operators, by PowerShell's precedence, loosest first::

    -and -or -xor
    -eq -ne -gt -ge -lt -le -like -notlike -match -notmatch -contains
        -notcontains -in -notin -replace -split (each also with a c or i
        prefix) -join -is -isnot -as
    + -
    * / %
    -f
    ..
    -not !
    ,                     (the comma binds tighter than all of the above)
    -x +x [type]x
    x.Name x.Method(a, b) x[i] [type]::Name

A binary operator ends a line only when it is the last thing on it (the
next line continues the expression); a line that starts with one is a new
statement, as in PowerShell.
"""

import re

from exmta.opath.parser import OPERATORS
from exmta.opath.reader import DASHES, QUOTES, Reader, parseNumber
from exmta.opath.syntax import ArrayLiteral, Constant, ExpandableString, Member
from exmta.shell.cmdlet import ScriptBlock
from exmta.shell.syntax import (
    ArrayExpression,
    Binary,
    Cast,
    HashLiteral,
    Index,
    MethodCall,
    Paren,
    ScriptBlockLiteral,
    ShellSyntaxError,
    StaticMember,
    SubExpression,
    TypeLiteral,
    Unary,
)

_COMPARISONS = frozenset(
    f"{prefix}{operator}"
    for operator in (*OPERATORS, "replace", "split")
    for prefix in ("", "i", "c")
) | {"join", "is", "isnot", "as"}
# The binary operators by precedence, loosest first: words follow a dash.
LEVELS = (
    frozenset({"and", "or", "xor"}),
    _COMPARISONS,
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
    frozenset({"f"}),
    frozenset({".."}),
)
OPERATOR_WORDS = frozenset().union(*LEVELS) | {"not"}
_NUMBER = re.compile(
    r"(?:0x[0-9a-f]+|(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?)[ld]?(?:kb|mb|gb|tb|pb)?(?![\w])",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z]+")
_TYPE = re.compile(r"[A-Za-z_][\w.`]*(?:\[\])?")
_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What ends a value of expression mode.
ENDS = ("", ";", "|", "\r", "\n", ")", "}", "]")


class ExpressionReader(Reader):
    """
    Expression mode, on PowerShell's tokens.  The parser that inherits
    from it gives C{statement()} and C{statements(closing)}, which
    parentheses, subexpressions and script blocks hold.

    @ivar noComma: whether a comma ends the expression (method arguments,
        a function's parameters) instead of making an array.
    """

    syntaxError = ShellSyntaxError
    noComma = False

    # Tokens.

    def numberAt(self):
        """
        @return: the length of the number literal at the position, or 0.
        """
        match = _NUMBER.match(self.s, self.i)
        return len(match.group()) if match else 0

    def wordAt(self, offset=None):
        """
        @return: the letters at C{offset} (the position), lower case.
        """
        match = _WORD.match(self.s, self.i if offset is None else offset)
        return match.group().lower() if match else ""

    def operatorAt(self, level):
        """
        @return: C{(operator, length)} for a binary operator of C{level}
            at the position, or C{None}.
        """
        c = self.peek()
        names = LEVELS[level]
        if c in DASHES and c != "" and self.peek(1).isalpha():
            word = self.wordAt(self.i + 1)
            if word in names and not (self.peek(1 + len(word)).isalnum()):
                return word, 1 + len(word)
            return None
        if c == "." and self.peek(1) == ".":
            return ("..", 2) if ".." in names else None
        if c in DASHES and c != "":
            c = "-"
        if c and c in names and self.peek(1) != "=":
            return c, 1
        return None

    # Expressions.

    def expression(self, level=0):
        """
        An expression whose binary operators are of C{level} or tighter.
        """
        if level == len(LEVELS):
            return self.notExpression()
        start = self.i
        left = self.expression(level + 1)
        while True:
            saved = self.i
            self.skipSpace()
            found = self.operatorAt(level)
            if found is None:
                self.i = saved
                return left
            operator, length = found
            written = self.s[self.i : self.i + length]
            self.i += length
            self.skipSpace(newlines=True)
            if self.peek() in ENDS or self.at(","):
                self.fail(
                    f"You must provide a value expression following the '{written}' operator.",
                    incomplete=self.peek() == "",
                )
            self.nest(start)
            right = self.expression(level + 1)
            self.depth -= 1
            left = Binary(operator, left, right, start, self.i)

    def notExpression(self):
        start = self.i
        c = self.peek()
        if c == "!" or (
            self.at(DASHES) and self.wordAt(self.i + 1) == "not"
            and not self.peek(4).isalnum()
        ):
            self.i += 1 if c == "!" else 4
            self.skipSpace(newlines=True)
            if self.peek() in ENDS:
                self.fail(
                    f"Missing expression after unary operator '{self.s[start:self.i].strip()}'.",
                    incomplete=self.peek() == "",
                )
            self.nest(start)
            operand = self.notExpression()
            self.depth -= 1
            return Unary("not", operand, start, self.i)
        return self.arrayExpression()

    def arrayExpression(self):
        """
        Values joined by commas, unless L{noComma}.
        """
        start = self.i
        items = [self.prefixed()]
        if self.noComma:
            return items[0]
        while True:
            saved = self.i
            self.skipSpace()
            if self.peek() != ",":
                self.i = saved
                break
            comma = self.i
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ENDS or self.at(","):
                self.fail("Missing expression after ','.", comma, incomplete=self.peek() == "")
            items.append(self.prefixed())
        if len(items) == 1:
            return items[0]
        return ArrayLiteral(tuple(items), start, self.i)

    def prefixed(self):
        """
        A value with its unary operators and casts: C{-x}, C{+x}, C{,x},
        C{[int]x}.
        """
        start = self.i
        c = self.peek()
        if c == "," or (self.at(DASHES + "+") and not self.peek(1).isalpha()):
            self.i += 1
            self.skipSpace(newlines=c == ",")
            if self.peek() in ENDS or self.at(","):
                self.fail(
                    f"Missing expression after unary operator '{c}'.",
                    start,
                    incomplete=self.peek() == "",
                )
            self.nest(start)
            operand = self.prefixed()
            self.depth -= 1
            if c == ",":
                return ArrayLiteral((operand,), start, self.i)
            if c == "+":
                return Unary("+", operand, start, self.i)
            if isinstance(operand, Constant) and isinstance(operand.value, (int, float)):
                return Constant(-operand.value, start, self.i)
            return Unary("-", operand, start, self.i)
        if c == "[":
            return self.typed()
        return self.postfix(self.primary())

    def typed(self):
        """
        C{[type]}, C{[type]::Member}, C{[type]value}.
        """
        start = self.i
        self.i += 1
        self.skipSpace()
        match = _TYPE.match(self.s, self.i)
        if match is None:
            self.fail("Missing type name after '['.", incomplete=self.peek() == "")
        self.i = match.end()
        self.skipSpace()
        if self.peek() != "]":
            self.fail("Missing ']' after type name.", incomplete=self.peek() == "")
        self.i += 1
        literal = TypeLiteral(match.group(), start, self.i)
        if self.peek() == ":" and self.peek(1) == ":":
            self.i += 2
            member = _MEMBER.match(self.s, self.i)
            if member is None:
                self.fail("Missing property name after operator '::'.")
            self.i = member.end()
            arguments = self.methodArguments() if self.peek() == "(" else None
            return self.postfix(StaticMember(literal, member.group(), arguments, start, self.i))
        saved = self.i
        self.skipSpace()
        if self.at("$(@[" + QUOTES) or self.numberAt():
            self.nest(start)
            operand = self.prefixed()
            self.depth -= 1
            return Cast(literal, operand, start, self.i)
        self.i = saved
        return literal

    def primary(self):
        c = self.peek()
        start = self.i
        if self.at(QUOTES):
            return self.quoted()
        if self.atBracket():
            return self.bracketed()
        if c == "$" and self.varStartsAt(self.i):
            return self.variable()
        if c == "{":
            return self.scriptBlock()
        length = self.numberAt()
        if not length:
            self.unexpected()
        self.i += length
        return Constant(parseNumber(self.s[start : self.i]), start, self.i)

    def postfix(self, node):
        """
        Members, method calls and indexes after a value, written without
        blanks: C{$c.UserName}, C{(Get-Date).AddHours(-1)}, C{$a[0]}.
        """
        while True:
            if self.peek() == "." and _MEMBER.match(self.s, self.i + 1):
                match = _MEMBER.match(self.s, self.i + 1)
                self.i = match.end()
                if self.peek() == "(":
                    arguments = self.methodArguments()
                    node = MethodCall(node, match.group(), arguments, node.start, self.i)
                else:
                    node = Member(node, match.group(), False, node.start, self.i)
            elif self.peek() == "[":
                bracket = self.i
                self.i += 1
                self.skipSpace(newlines=True)
                if self.peek() == "]":
                    self.fail("Array index expression is missing or not valid.", bracket)
                saved, self.noComma = self.noComma, False
                self.nest(bracket)
                index = self.expression()
                self.depth -= 1
                self.noComma = saved
                self.skipSpace(newlines=True)
                if self.peek() != "]":
                    self.fail(
                        "Missing ']' after array index expression.",
                        bracket,
                        incomplete=self.peek() == "",
                    )
                self.i += 1
                node = Index(node, index, node.start, self.i)
            else:
                return node

    def methodArguments(self):
        """
        C{(a, b)} after a method's name: each argument an expression.
        """
        start = self.i
        self.i += 1
        self.nest(start)
        arguments = []
        saved, self.noComma = self.noComma, True
        while True:
            self.skipSpace(newlines=True)
            if self.peek() == ")" and not arguments:
                break
            if self.peek() in ENDS or self.at(","):
                if self.peek() == "":
                    self.fail("Missing ')' in method call.", start, incomplete=True)
                self.fail("Missing argument in method call.") if self.at(",") else self.unexpected()
            arguments.append(self.expression())
            self.skipSpace(newlines=True)
            if self.peek() == ",":
                self.i += 1
                continue
            if self.peek() == ")":
                break
            if self.peek() == "":
                self.fail("Missing ')' in method call.", start, incomplete=True)
            self.unexpected()
        self.i += 1
        self.noComma = saved
        self.depth -= 1
        return tuple(arguments)

    def atBracket(self):
        """
        Whether C{(}, C{$(}, C{@(} or C{@{} is at the position.
        """
        c = self.peek()
        return c == "(" or (c == "$" and self.peek(1) == "(") or (c == "@" and self.at("({", 1))

    def bracketed(self):
        """
        C{(pipeline)}, C{$(statements)}, C{@(statements)}, C{@{hashtable}}.
        """
        start = self.i
        self.nest(start)
        saved, self.noComma = self.noComma, False
        if self.peek() == "(":
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() == ")":
                self.fail("An expression was expected after '('.", incomplete=False)
            if self.peek() == "":
                self.fail("Missing closing ')' in expression.", incomplete=True)
            pipeline = self.statement()
            self.skipSpace(newlines=True)
            if self.peek() != ")":
                if self.peek() == "":
                    self.fail("Missing closing ')' in expression.", start, incomplete=True)
                self.unexpected()
            self.i += 1
            node = Paren(pipeline, start, self.i)
        elif self.peek(1) == "{":
            self.i += 2
            node = self.hashtable(start)
        else:
            sigil = self.peek()
            self.i += 2
            statements = self.statements(closing=")")
            kind = SubExpression if sigil == "$" else ArrayExpression
            node = kind(statements, start, self.i)
        self.noComma = saved
        self.depth -= 1
        return node

    def hashtable(self, start):
        pairs = []
        while True:
            self.skipSpace(newlines=True)
            c = self.peek()
            if c == ";":
                self.i += 1
                continue
            if c == "}":
                self.i += 1
                return HashLiteral(tuple(pairs), start, self.i)
            if c == "":
                self.fail("Missing closing '}' in hash literal.", start, 2, incomplete=True)
            keyStart = self.i
            if c in QUOTES:
                keyNode = self.quoted()
                if isinstance(keyNode, ExpandableString):
                    if any(not isinstance(part, str) for part in keyNode.parts):
                        self.fail("A hash key must be a constant.", keyStart)
                    key = "".join(keyNode.parts)
                else:
                    key = keyNode.value
            else:
                while self.i < len(self.s) and (
                    self.s[self.i].isalnum() or self.s[self.i] in "_-."
                ):
                    self.i += 1
                key = self.s[keyStart : self.i]
                if not key:
                    self.fail("Missing key before '=' in hash literal.")
            self.skipSpace()
            if self.peek() != "=":
                self.fail(
                    "Missing '=' operator after key in hash literal.", incomplete=self.peek() == ""
                )
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ("", ";", "}", "\r", "\n"):
                self.fail(
                    "Missing statement after '=' in hash literal.", incomplete=self.peek() == ""
                )
            value = self.statement()
            pairs.append((key, value))
            self.skipSpace()
            if self.peek() not in (";", "}", "\r", "\n", ""):
                self.unexpected()

    def scriptBlock(self):
        """
        C{{ ... }}: its statements, when they are the Shell's language, and
        its text (a filter's language is not always: C{{Name -like "To*"}}).
        """
        start = self.i
        depth, noComma = self.depth, self.noComma
        self.i += 1
        self.noComma = False
        self.nest(start)
        try:
            statements = self.statements(closing="}")
            error = None
        except ShellSyntaxError as problem:
            statements, error = None, problem
            self.i, self.depth = start + 1, depth + 1
            self.skipBlockText(start)
        self.depth, self.noComma = depth, noComma
        text = self.s[start + 1 : self.i - 1].strip()
        return ScriptBlockLiteral(ScriptBlock(text, statements, self.s, error), start, self.i)

    def skipBlockText(self, start):
        """
        Move past the closing brace of the block opened at C{start}:
        braces nest; braces in strings and comments do not count.
        """
        depth = 1
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "{":
                depth += 1
                self.i += 1
            elif c == "}":
                depth -= 1
                self.i += 1
                if depth == 0:
                    return
            elif c in QUOTES:
                self.quoted()
            elif c == "`":
                self.i += 2
            elif c == "#":
                while self.i < len(s) and s[self.i] not in "\r\n":
                    self.i += 1
            elif s.startswith("<#", self.i):
                end = s.find("#>", self.i + 2)
                self.i = len(s) if end < 0 else end + 2
            else:
                self.i += 1
        self.fail(
            "Missing closing '}' in statement block or type definition.", start, incomplete=True
        )

    def subexpression(self):
        start = self.i
        self.nest(start)
        self.i += 2
        saved, self.noComma = self.noComma, False
        statements = self.statements(closing=")")
        self.noComma = saved
        self.depth -= 1
        return SubExpression(statements, start, self.i)
