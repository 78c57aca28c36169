"""
PowerShell's tokens, as both the Shell's language (L{exmta.shell.parser})
and filters (L{exmta.opath.parser}) read them: blanks, comments and line
continuations; C{'single'} and C{"double"} quoted strings, typographic
quotes included (C{$variable}, C{${name}} and C{$(...)} expansion and
backtick escapes in double quotes); variables (C{$name}, C{$env:NAME},
C{${any name}}); member access (C{$c.UserName}, C{.Method()}); barewords;
and number literals (C{25}, C{0x19}, C{1.5}, C{10MB}).

A L{Reader} is the base of each parser: it reads at a position in the
text and raises its parser's C{syntaxError} with PowerShell's words.
"""

import re

from exmta.opath.syntax import Constant, ExpandableString, Member, Variable

DASHES = "-\u2013\u2014\u2015"
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
QUOTES = SINGLE_QUOTES + DOUBLE_QUOTES
# What ends a bareword in a command's arguments.
SPECIAL = set(";|,(){}&<>") | set(QUOTES)
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


class Reader:
    """
    @cvar syntaxError: the L{exmta.opath.syntax.PowerShellSyntaxError}
        subclass L{fail} raises.
    @ivar s: the text.
    @ivar i: the position.
    @ivar depth: how deeply the position is nested (L{nest}).
    """

    syntaxError = None

    def __init__(self, source):
        self.s = source
        self.i = 0
        self.depth = 0

    def subexpression(self):
        """
        Read C{$(...)} in a double-quoted string, the position at its
        C{$}; each language says what it takes.

        @return: the node to expand there.
        """
        raise NotImplementedError

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

    def fail(self, message, offset=None, length=1, incomplete=False, **details):
        """
        @param details: what the parser's C{syntaxError} takes besides.
        """
        raise self.syntaxError(
            message, self.s, self.i if offset is None else offset, length, incomplete, **details
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

    def varStartsAt(self, offset):
        """
        Whether a variable reference starts at C{offset} (a C{$} there).
        """
        nxt = self.s[offset + 1] if offset + 1 < len(self.s) else ""
        return nxt != "" and (nxt.isalnum() or nxt in "_?{(")

    # Tokens.

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
            if c.isspace() or c in SPECIAL:
                break
            if c == "$" and self.varStartsAt(self.i):
                break
            out.append(c)
            self.i += 1
        return "".join(out)

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
                    parts.append(self.subexpression())
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


def parseNumber(text):
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
