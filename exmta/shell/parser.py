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
  - L{exmta.shell.filter} reads the filter language of script blocks
    (C{Where-Object {$_.Name -like "To*"}}, Exchange's
    C{-Filter {FromAddress -eq "kim@fabrikam.com"}}).

What it does not read: operators outside filters (C{1 + 1}), keywords
(C{if}, C{foreach}, C{function}), indexing, type literals, redirection,
C{&} and splatting.

Every input either parses or raises L{ShellSyntaxError}, whose text is
PowerShell's: the line and column, the line with the fault underlined, and
the message naming the token.
"""

import re

from exmta.shell.cmdlet import ScriptBlock
from exmta.shell.syntax import (
    ArrayExpression,
    ArrayLiteral,
    Command,
    CommandParameter,
    Composite,
    Constant,
    ExpandableString,
    HashLiteral,
    Member,
    Paren,
    Pipeline,
    Script,
    ScriptBlockLiteral,
    ShellSyntaxError,
    SubExpression,
    Variable,
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

DASHES = "-\u2013\u2014\u2015"
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
QUOTES = SINGLE_QUOTES + DOUBLE_QUOTES
# What ends a bareword in a command's arguments.
_SPECIAL = set(";|,(){}&<>") | set(QUOTES)
_MAX_DEPTH = 50
_SCOPES = ("env", "global", "script", "local", "private", "variable")
_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_MULTIPLIERS = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_NUMBER = re.compile(
    r"(?P<sign>[-\u2013\u2014\u2015+])?(?:0x(?P<hex>[0-9a-f]+)|(?P<dec>(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?))"
    r"(?P<type>[ld])?(?P<mult>kb|mb|gb|tb|pb)?",
    re.IGNORECASE,
)
_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


class _Parser:
    def __init__(self, source):
        self.s = source
        self.i = 0
        self.depth = 0

    # Characters.

    def peek(self, ahead=0):
        index = self.i + ahead
        return self.s[index] if index < len(self.s) else ""

    def at(self, chars, ahead=0):
        """
        Whether the character C{ahead} of the position is one of C{chars}
        (never at the end of the text).
        """
        c = self.peek(ahead)
        return c != "" and c in chars

    def atParameter(self):
        return self.at(DASHES) and (self.peek(1).isalpha() or self.at("_?", 1))

    def fail(self, message, offset=None, length=1, incomplete=False):
        raise ShellSyntaxError(
            message, self.s, self.i if offset is None else offset, length, incomplete
        )

    def nest(self, offset):
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail("The script is nested too deeply.", offset)

    def skipSpace(self, newlines=False):
        """
        Skip blanks, comments and line continuations (and line ends, when
        C{newlines}).
        """
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in "\r\n":
                if not newlines:
                    return
                self.i += 1
            elif c.isspace():
                self.i += 1
            elif c == "`" and self.peek(1) in ("\r", "\n"):
                self.i += 3 if s.startswith("\r\n", self.i + 1) else 2
            elif c == "`" and self.i + 1 == len(s):
                self.fail(
                    "Missing the line that the backtick (`) at the end continues.", incomplete=True
                )
            elif c == "#":
                while self.i < len(s) and s[self.i] not in "\r\n":
                    self.i += 1
            elif s.startswith("<#", self.i):
                end = s.find("#>", self.i + 2)
                if end < 0:
                    self.fail(
                        "Missing the terminator '#>' of a block comment.", length=2, incomplete=True
                    )
                self.i = end + 2
            else:
                return

    def atNewline(self):
        return self.peek() in ("\r", "\n")

    def varStartsAt(self, offset):
        """
        Whether a variable reference starts at C{offset} (a C{$} there).
        """
        nxt = self.s[offset + 1] if offset + 1 < len(self.s) else ""
        return nxt != "" and (nxt.isalnum() or nxt in "_?{(")

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
            return _number(text) is not None
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
            if c.isspace() or c == ":" or c in _SPECIAL or c == "`" or c == "$":
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
            elif c.isspace() or c in _SPECIAL or (c == "`" and self.peek(1) in ("\r", "\n")):
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
                number = _number(self.s[piece.start : piece.end])
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

    def bareChunk(self):
        """
        Read a bareword of argument mode, with its backtick escapes.
        """
        s = self.s
        out = []
        while self.i < len(s):
            c = s[self.i]
            if c == "`":
                nxt = self.peek(1)
                if nxt in ("\r", "\n"):
                    break
                if nxt == "":
                    self.fail(
                        "Missing the line that the backtick (`) at the end continues.",
                        incomplete=True,
                    )
                out.append(nxt)
                self.i += 2
                continue
            if c.isspace() or c in _SPECIAL:
                break
            if c == "$" and self.varStartsAt(self.i):
                break
            out.append(c)
            self.i += 1
        return "".join(out)

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
        number = _number(text)
        if number is None:
            self.i = start
            self.unexpected()
        return Constant(number, start, self.i)

    def postfix(self, node):
        """
        Member access: C{.Name}, C{.Method()}.
        """
        while self.peek() == "." and _MEMBER.match(self.s, self.i + 1):
            match = _MEMBER.match(self.s, self.i + 1)
            self.i = match.end()
            call = False
            if self.peek() == "(":
                if self.peek(1) != ")":
                    self.fail("Method calls with arguments are not supported by the exmta Shell.")
                self.i += 2
                call = True
            node = Member(node, match.group(), call, node.start, self.i)
        return node

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

    def variable(self):
        """
        C{$name}, C{$env:NAME}, C{${any name}}.
        """
        start = self.i
        self.i += 1
        if self.peek() == "{":
            end = self.s.find("}", self.i)
            if end < 0:
                self.fail("Missing closing '}' of a variable name.", start, incomplete=True)
            name = self.s[self.i + 1 : end]
            if not name:
                self.fail("Empty ${} variable.", start, 3)
            self.i = end + 1
            return Variable(name, start, self.i)
        if self.peek() == "?":
            self.i += 1
            return Variable("?", start, self.i)
        nameStart = self.i
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        if self.peek() == ":" and self.s[nameStart : self.i].lower() in _SCOPES:
            after = self.i + 1
            if after < len(self.s) and (self.s[after].isalnum() or self.s[after] == "_"):
                self.i = after
                while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
                    self.i += 1
        return Variable(self.s[nameStart : self.i], start, self.i)

    def quoted(self):
        """
        A single- or double-quoted string, typographic quotes included.
        """
        start = self.i
        if self.peek() in SINGLE_QUOTES:
            self.i += 1
            out = []
            while True:
                if self.i >= len(self.s):
                    self.fail(
                        "The string is missing the terminator: '.",
                        start,
                        len(self.s) - start,
                        incomplete=True,
                    )
                c = self.s[self.i]
                if c in SINGLE_QUOTES:
                    if self.peek(1) in SINGLE_QUOTES and self.peek(1) != "":
                        out.append(c)
                        self.i += 2
                        continue
                    self.i += 1
                    return Constant("".join(out), start, self.i)
                out.append(c)
                self.i += 1
        self.i += 1
        parts = []
        text = []
        while True:
            if self.i >= len(self.s):
                self.fail(
                    'The string is missing the terminator: ".',
                    start,
                    len(self.s) - start,
                    incomplete=True,
                )
            c = self.s[self.i]
            if c in DOUBLE_QUOTES:
                if self.peek(1) in DOUBLE_QUOTES and self.peek(1) != "":
                    text.append(c)
                    self.i += 2
                    continue
                self.i += 1
                break
            if c == "`":
                nxt = self.peek(1)
                if nxt == "":
                    self.i += 1
                    continue
                if nxt == "u" and self.peek(2) == "{":
                    end = self.s.find("}", self.i + 3)
                    digits = self.s[self.i + 3 : end] if end > 0 else ""
                    if not re.fullmatch(r"[0-9a-fA-F]{1,6}", digits) or int(digits, 16) > 0x10FFFF:
                        self.fail("The Unicode escape sequence is not valid.", self.i, 3)
                    text.append(chr(int(digits, 16)))
                    self.i = end + 1
                    continue
                text.append(_ESCAPES.get(nxt, nxt))
                self.i += 2
                continue
            if c == "$" and self.varStartsAt(self.i):
                if text:
                    parts.append("".join(text))
                    text = []
                if self.peek(1) == "(":
                    self.nest(self.i)
                    subStart = self.i
                    self.i += 2
                    statements = self.statements(closing=")")
                    self.depth -= 1
                    parts.append(SubExpression(statements, subStart, self.i))
                else:
                    parts.append(self.variable())
                continue
            text.append(c)
            self.i += 1
        if text or not parts:
            parts.append("".join(text))
        if all(isinstance(part, str) for part in parts):
            return Constant("".join(parts), start, self.i)
        return ExpandableString(tuple(parts), start, self.i)


def _missingClosing(closing):
    if closing == ")":
        return "Missing closing ')' in subexpression."
    return f"Missing closing '{closing}' in statement block or type definition."


def _number(text):
    """
    @return: the value of a PowerShell number literal (C{25}, C{0x19},
        C{1.5}, C{10MB}), or C{None} when C{text} is not one.
    """
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    if match["hex"] is not None:
        value = int(match["hex"], 16)
    elif re.fullmatch(r"\d+", match["dec"]):
        value = int(match["dec"])
    else:
        try:
            value = float(match["dec"])
        except OverflowError:  # pragma: no cover - float() returns inf
            return None
    if match["mult"]:
        value = value * _MULTIPLIERS[match["mult"].lower()]
    if isinstance(value, float) and value.is_integer() and match["mult"]:
        value = int(value)
    if match["sign"] and match["sign"] != "+":
        value = -value
    return value
