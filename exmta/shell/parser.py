"""
The exmta Shell's language: the part of PowerShell's syntax the Exchange
Management Shell's commands are written in.

    Get-ReceiveConnector "FromInternetGateway" | Add-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights "Ms-Exch-SMTP-Accept-Any-Recipient"
    $mycred = Get-Credential; New-SendConnector -Name:X -SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS -AuthenticationCredential $mycred -WhatIf

What it reads, as PowerShell reads it:

  - Statements separated by newlines or C{;}; C{#} comments and C{<# #>}
    block comments; a backtick at the end of a line continues it, and so
    does a C{|}, a C{,} or an C{=} at the end of a line.
  - A statement is a pipeline, C{a | b | c}, optionally assigned to a
    variable, C{$mycred = Get-Credential}.  Its first element is a command
    or an expression (C{$mycred | Format-List}, C{"a","b" | Write-Output}).
  - A command is a name (C{Verb-Noun}) and arguments: parameters
    C{-Name value}, C{-Name:value} (C{-Confirm:$false}), switches
    (C{-WhatIf}), and positional values.  The dashes may be typographic
    (en and em dashes), and so may the quotes, as in pasted documents.
  - Values in a command's arguments ("argument mode"): barewords
    (C{HubA}, C{10.2.3.4:25}, C{[::1]:2525}, C{*}); numbers (C{25},
    C{0x19}, C{10MB}); C{'single'} (no expansion, C{''} is a quote) and
    C{"double"} quoted strings (C{$variable}, C{${name}}, C{$(...)}
    expansion and backtick escapes); C{$true}, C{$false}, C{$null},
    C{$variables}, C{$env:NAME}, member access C{$c.UserName};
    comma lists (C{BasicAuth,BasicAuthRequireTLS}, C{"a", "b"});
    adjacent pieces joined into one string (C{pre"fix"$x}); C{(pipeline)},
    C{$(statements)}, C{@(statements)} arrays, C{@{Key=value; ...}}
    hashtables and C{{ script blocks }}, kept as their text.
  - L{exmta.opath} reads the filter language of script blocks
    (C{Where-Object {$_.Name -like "To*"}}, Exchange's
    C{-Filter {FromAddress -eq "kim@fabrikam.com"}}); its tokens are this
    language's (L{exmta.opath.reader}, which this parser builds on).

What it does not read: operators outside filters (C{1 + 1}), keywords
(C{if}, C{foreach}, C{function}), indexing, type literals, redirection,
C{&} and splatting.

Every input either parses or raises L{ShellSyntaxError}, whose text is
PowerShell's: the line and column, the line with the fault underlined, and
the message naming the token.
"""

from exmta.opath.reader import DASHES, QUOTES, SPECIAL, Reader, parseNumber
from exmta.opath.syntax import (
    ArrayLiteral,
    Constant,
    ExpandableString,
    Member,
    Variable,
)
from exmta.shell.cmdlet import ScriptBlock
from exmta.shell.syntax import (
    ArrayExpression,
    Command,
    CommandParameter,
    Composite,
    HashLiteral,
    Paren,
    Pipeline,
    Script,
    ScriptBlockLiteral,
    ShellSyntaxError,
    SubExpression,
)

__all__ = [
    "ShellSyntaxError",
    "parse",
    "Script",
    "Pipeline",
    "Command",
    "CommandParameter",
    "Constant",
    "ExpandableString",
    "Variable",
    "Member",
    "ArrayLiteral",
    "Paren",
    "SubExpression",
    "ArrayExpression",
    "HashLiteral",
    "ScriptBlockLiteral",
    "Composite",
]


def parse(source):
    """
    @return: the L{Script} of C{source}.
    @raise ShellSyntaxError: when it is not one.
    """
    if not isinstance(source, str):
        raise TypeError("source must be text")
    parser = _Parser(source)
    statements = parser.statements(closing=None)
    return Script(statements, source)


class _Parser(Reader):
    syntaxError = ShellSyntaxError

    def atParameter(self):
        return self.at(DASHES) and (self.peek(1).isalpha() or self.at("_?", 1))

    # Statements.

    def statements(self, closing):
        """
        Statements up to C{closing} (C{")"}, C{"}"}), which is consumed, or
        up to the end of the text when it is C{None}.
        """
        statements = []
        while True:
            self.skipSpace(newlines=True)
            c = self.peek()
            if c == ";":
                self.i += 1
                continue
            if c == "":
                if closing is not None:
                    self.fail(_missingClosing(closing), incomplete=True)
                return tuple(statements)
            if c == closing:
                self.i += 1
                return tuple(statements)
            statements.append(self.statement())
            self.skipSpace()
            c = self.peek()
            if c in ("", ";", "\r", "\n") or c == closing:
                continue
            self.unexpected()

    def unexpected(self):
        start = self.i
        c = self.peek()
        if c == "":
            self.fail("Unexpected end of input.", incomplete=True)
        if c == "&":
            if self.peek(1) == "&":
                self.fail(
                    "The token '&&' is not a valid statement separator in this version.", length=2
                )
            self.fail(
                "The ampersand (&) character is not allowed. The & operator is reserved for future use; "
                'wrap an ampersand in double quotation marks ("&") to pass it as part of a string.'
            )
        if c in "<>":
            self.fail(
                f"The '{c}' operator is reserved for future use: the exmta Shell does not redirect."
            )
        if c in "(){},|;=":
            token = c
        else:
            self.bareChunk()
            token = self.s[start : self.i] or c
        self.fail(f"Unexpected token '{token}' in expression or statement.", start, len(token))

    def statement(self):
        start = self.i
        assignTo = None
        if self.peek() == "$" and self.varStartsAt(self.i):
            saved = self.i
            variable = self.variable()
            self.skipSpace()
            if self.peek() == "=" and self.peek(1) != "=":
                self.i += 1
                assignTo = variable.name
                self.skipSpace(newlines=True)
                if self.peek() in ("", ";", ")", "}", "|"):
                    self.fail(
                        "You must provide a value expression following the '=' operator.",
                        incomplete=self.peek() == "",
                    )
            else:
                self.i = saved
        elements = [self.pipelineElement(first=True)]
        while True:
            self.skipSpace()
            if self.peek() != "|":
                break
            if self.peek(1) == "|":
                self.fail(
                    "The token '||' is not a valid statement separator in this version.", length=2
                )
            bar = self.i
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ("", ";", "|", ")", "}"):
                self.fail(
                    "An empty pipe element is not allowed.", bar, incomplete=self.peek() == ""
                )
            elements.append(self.pipelineElement(first=False))
        return Pipeline(tuple(elements), assignTo, start, self.i)

    def pipelineElement(self, first):
        if first and self.startsExpression():
            return self.expressionList()
        if self.peek() == "" or self.at(")};|,&<>="):
            self.unexpected()
        if not first and self.startsExpression():
            self.fail("Expressions are only allowed as the first element of a pipeline.")
        return self.command()

    def startsExpression(self):
        c = self.peek()
        if c == "$":
            return self.varStartsAt(self.i)
        if self.at(QUOTES + "@({,"):
            return True
        if c.isdigit() or (self.at(DASHES + ".") and self.peek(1).isdigit()):
            saved = self.i
            self.bareChunk()
            text = self.s[saved : self.i]
            self.i = saved
            return parseNumber(text) is not None
        return False

    # Commands.

    def command(self):
        start = self.i
        name = self.bareChunk()
        if not name:
            self.unexpected()
        elements = []
        while True:
            self.skipSpace()
            c = self.peek()
            if c in ("", ";", "|", "\r", "\n", ")", "}"):
                break
            if self.atParameter():
                elements.append(self.parameter())
            elif c in "&<>":
                self.unexpected()
            else:
                elements.append(self.argumentList())
        return Command(name, tuple(elements), start, self.i)

    def parameter(self):
        start = self.i
        self.i += 1
        while self.i < len(self.s):
            c = self.s[self.i]
            if c.isspace() or c == ":" or c in SPECIAL or c == "`" or c == "$":
                break
            self.i += 1
        name = self.s[start + 1 : self.i]
        if self.peek() != ":":
            return CommandParameter(name, None, False, start, self.i)
        self.i += 1
        self.skipSpace()
        if self.peek() in ("", ";", "|", "\r", "\n", ")", "}") or self.atParameter():
            return CommandParameter(name, None, True, start, self.i)
        argument = self.argumentList()
        return CommandParameter(name, argument, True, start, self.i)

    def argumentList(self):
        """
        An argument: one value, or a comma list of them.
        """
        start = self.i
        if self.peek() == ",":
            self.fail("Missing argument in parameter list.")
        items = [self.argument()]
        while True:
            saved = self.i
            self.skipSpace()
            if self.peek() != ",":
                self.i = saved
                break
            comma = self.i
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ("", ";", "|", ")", "}", ","):
                self.fail("Missing expression after ','.", comma, incomplete=self.peek() == "")
            items.append(self.argument())
        if len(items) == 1:
            return items[0]
        return ArrayLiteral(tuple(items), start, self.i)

    def argument(self):
        """
        One value of argument mode: adjacent pieces, or a bracketed form.
        """
        start = self.i
        c = self.peek()
        if self.atBracket():
            return self.postfix(self.bracketed())
        if c == "{":
            return self.scriptBlock()
        if self.at("&<>"):
            self.unexpected()
        pieces = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in QUOTES:
                pieces.append(self.quoted())
            elif c == "$" and self.varStartsAt(self.i):
                if self.peek(1) == "(":
                    pieces.append(self.postfix(self.bracketed()))
                else:
                    pieces.append(self.postfix(self.variable()))
            elif c.isspace() or c in SPECIAL or (c == "`" and self.peek(1) in ("\r", "\n")):
                break
            else:
                chunkStart = self.i
                text = self.bareChunk()
                pieces.append(Constant(text, chunkStart, self.i, bareword=True))
        if not pieces:
            self.unexpected()
        if len(pieces) == 1:
            piece = pieces[0]
            if isinstance(piece, Constant) and piece.bareword:
                number = parseNumber(self.s[piece.start : piece.end])
                if number is not None:
                    return Constant(number, piece.start, piece.end)
            return piece
        return Composite(tuple(pieces), start, self.i)

    def atBracket(self):
        """
        Whether C{(}, C{$(}, C{@(} or C{@{} is at the position.
        """
        c = self.peek()
        return c == "(" or (c == "$" and self.peek(1) == "(") or (c == "@" and self.at("({", 1))

    # Expressions.

    def expressionList(self):
        """
        Expression mode: a value or a comma list, then the end of the
        pipeline element.
        """
        start = self.i
        items = [self.unary()]
        while True:
            self.skipSpace()
            if self.peek() != ",":
                break
            comma = self.i
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ("", ";", "|", ")", "}", ","):
                self.fail("Missing expression after ','.", comma, incomplete=self.peek() == "")
            items.append(self.unary())
        self.skipSpace()
        if self.peek() not in ("", ";", "|", "\r", "\n", ")", "}"):
            self.unexpected()
        if len(items) == 1:
            return items[0]
        return ArrayLiteral(tuple(items), start, self.i)

    def unary(self):
        start = self.i
        if self.peek() == ",":
            self.nest(start)
            self.i += 1
            self.skipSpace(newlines=True)
            if self.peek() in ("", ";", "|", ")", "}", ","):
                self.fail(
                    "Missing expression after unary operator ','.",
                    start,
                    incomplete=self.peek() == "",
                )
            item = self.unary()
            self.depth -= 1
            return ArrayLiteral((item,), start, self.i)
        return self.primary()

    def primary(self):
        c = self.peek()
        start = self.i
        if self.at(QUOTES):
            return self.postfix(self.quoted())
        if self.atBracket():
            return self.postfix(self.bracketed())
        if c == "$" and self.varStartsAt(self.i):
            return self.postfix(self.variable())
        if c == "{":
            return self.scriptBlock()
        text = self.bareChunk()
        number = parseNumber(text)
        if number is None:
            self.i = start
            self.unexpected()
        return Constant(number, start, self.i)

    def bracketed(self):
        """
        C{(pipeline)}, C{$(statements)}, C{@(statements)}, C{@{hashtable}}.
        """
        start = self.i
        self.nest(start)
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
        C{{ ... }}, kept as its text: braces nest; braces in strings and
        comments do not count.
        """
        start = self.i
        self.i += 1
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
                    text = s[start + 1 : self.i - 1].strip()
                    return ScriptBlockLiteral(ScriptBlock(text), start, self.i)
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
        statements = self.statements(closing=")")
        self.depth -= 1
        return SubExpression(statements, start, self.i)


def _missingClosing(closing):
    if closing == ")":
        return "Missing closing ')' in subexpression."
    return f"Missing closing '{closing}' in statement block or type definition."
