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

  - Expressions (L{exmta.shell.expressionparser}): PowerShell's
    operators (C{-eq}, C{-like}, C{-and}, C{+}, C{..}, C{-f}...), member
    access, method calls (C{(Get-Date).AddHours(-1)}), indexing
    (C{$a[0]}), casts and type literals (C{[int]$x}, C{[datetime]::Now}).
  - Statements: C{if (...) {} elseif (...) {} else {}}, C{foreach ($x in
    ...) {}}, C{while (...) {}}, C{function Name { param($a, $b = 1) ...
    }} (or C{function Name($a) {...}}), C{try {} catch {} finally {}},
    C{throw}, C{return}, C{break}, C{continue}; assignments to variables,
    members and indexes, also C{+=}, C{-=}, C{*=}, C{/=}.

What it does not read: C{switch}, C{for}, C{do}, classes, C{&},
redirection and splatting.

Every input either parses or raises L{ShellSyntaxError}, whose text is
PowerShell's: the line and column, the line with the fault underlined, and
the message naming the token.
"""

import re

from exmta.opath.reader import DASHES, QUOTES, SPECIAL, parseNumber
from exmta.opath.syntax import (
    ArrayLiteral,
    Constant,
    ExpandableString,
    Member,
    Variable,
)
from exmta.shell.expressionparser import ENDS, ExpressionReader
from exmta.shell.syntax import (
    ArrayExpression,
    Assignment,
    Catch,
    Command,
    CommandParameter,
    Composite,
    Flow,
    ForEach,
    FunctionDefinition,
    HashLiteral,
    If,
    ParameterDeclaration,
    Paren,
    Pipeline,
    Script,
    ScriptBlockLiteral,
    ShellSyntaxError,
    SubExpression,
    Try,
    While,
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


class _Parser(ExpressionReader):

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
        """
        A keyword's statement, an assignment or a pipeline.
        """
        start = self.i
        keyword = self.keywordAt()
        if keyword is not None:
            self.i += len(keyword)
            return getattr(self, f"_{keyword}")(start)
        return self.pipelineStatement()

    def keywordAt(self):
        word = self.wordAt()
        if word in _KEYWORDS:
            after = self.peek(len(word))
            if after == "" or after.isspace() or after in "({;}":
                return word
        return None

    def pipelineStatement(self):
        start = self.i
        if self.peek() == "$" and self.varStartsAt(self.i) and self.peek(1) != "(":
            saved = self.i
            target = self.postfix(self.variable())
            self.skipSpace()
            match = _ASSIGN.match(self.s, self.i)
            if match is not None:
                operator = match.group()
                self.i = match.end()
                self.skipSpace(newlines=True)
                if self.peek() in ("", ";", ")", "}", "|"):
                    self.fail(
                        f"You must provide a value expression following the '{operator}' operator.",
                        incomplete=self.peek() == "",
                    )
                value = self.statement()
                if (
                    operator == "="
                    and isinstance(target, Variable)
                    and isinstance(value, Pipeline)
                    and value.assignTo is None
                ):
                    return Pipeline(value.elements, target.name, start, self.i)
                return Assignment(target, operator, value, start, self.i)
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
        return Pipeline(tuple(elements), None, start, self.i)

    def pipelineElement(self, first):
        if first and self.startsExpression():
            node = self.expression()
            self.skipSpace()
            if self.peek() not in ENDS or self.peek() == "]":
                self.unexpected()
            return node
        if self.peek() == "" or self.at(")};|,&<>="):
            self.unexpected()
        if not first and self.startsExpression():
            self.fail("Expressions are only allowed as the first element of a pipeline.")
        return self.command()

    def startsExpression(self):
        c = self.peek()
        if c == "$":
            return self.varStartsAt(self.i)
        if self.at(QUOTES + "@({,[!"):
            return True
        if self.at(DASHES) and self.wordAt(self.i + 1) == "not" and not self.peek(4).isalnum():
            return True
        if self.at(DASHES + ".") and self.peek(1).isdigit():
            saved = self.i
            self.bareChunk()
            text = self.s[saved : self.i]
            self.i = saved
            return parseNumber(text) is not None
        return self.numberAt() > 0

    # Keyword statements.

    def block(self, message):
        """
        C{{ statements }}, or a syntax error saying C{message}.
        """
        self.skipSpace(newlines=True)
        if self.peek() != "{":
            self.fail(message, incomplete=self.peek() == "")
        start = self.i
        self.i += 1
        self.nest(start)
        saved, self.noComma = self.noComma, False
        statements = self.statements(closing="}")
        self.noComma = saved
        self.depth -= 1
        return statements

    def condition(self, keyword):
        """
        C{(pipeline)} after C{if}, C{elseif} and C{while}.
        """
        self.skipSpace(newlines=True)
        if self.peek() != "(":
            self.fail(f"Missing '(' after '{keyword}' in {keyword} statement.",
                      incomplete=self.peek() == "")
        self.i += 1
        self.skipSpace(newlines=True)
        if self.peek() in ("", ")"):
            self.fail(f"Missing condition in {keyword} statement after '{keyword} ('.",
                      incomplete=self.peek() == "")
        condition = self.pipelineStatement()
        self.skipSpace(newlines=True)
        if self.peek() != ")":
            if self.peek() == "":
                self.fail(f"Missing closing ')' after expression in '{keyword}' statement.",
                          incomplete=True)
            self.unexpected()
        self.i += 1
        return condition

    def followedBy(self, *words):
        """
        @return: which of C{words} comes next, past blanks and line ends
            (the position after it), or C{None} (the position unchanged).
        """
        saved = self.i
        self.skipSpace(newlines=True)
        word = self.wordAt()
        if word in words and not (self.peek(len(word)).isalnum() or self.peek(len(word)) in "-_"):
            self.i += len(word)
            return word
        self.i = saved
        return None

    def _if(self, start):
        clauses = []
        keyword = "if"
        while True:
            condition = self.condition(keyword)
            body = self.block(f"Missing statement block after {keyword} ( condition ).")
            clauses.append((condition, body))
            keyword = self.followedBy("elseif", "else")
            if keyword == "else":
                otherwise = self.block("Missing statement block after 'else' keyword.")
                return If(tuple(clauses), otherwise, start, self.i)
            if keyword is None:
                return If(tuple(clauses), None, start, self.i)

    def _while(self, start):
        condition = self.condition("while")
        body = self.block("Missing statement body in while loop.")
        return While(condition, body, start, self.i)

    def _foreach(self, start):
        self.skipSpace(newlines=True)
        if self.peek() != "(":
            self.fail("Missing opening '(' after keyword 'foreach'.", incomplete=self.peek() == "")
        self.i += 1
        self.skipSpace(newlines=True)
        if not (self.peek() == "$" and self.varStartsAt(self.i)):
            self.fail("Missing variable name after foreach.", incomplete=self.peek() == "")
        variable = self.variable()
        if self.followedBy("in") is None:
            self.skipSpace(newlines=True)
            self.fail("Missing 'in' after variable in foreach loop.", incomplete=self.peek() == "")
        self.skipSpace(newlines=True)
        if self.peek() in ("", ")"):
            self.fail("Missing foreach loop collection.", incomplete=self.peek() == "")
        collection = self.pipelineStatement()
        self.skipSpace(newlines=True)
        if self.peek() != ")":
            if self.peek() == "":
                self.fail("Missing closing ')' after expression in 'foreach' statement.",
                          incomplete=True)
            self.unexpected()
        self.i += 1
        body = self.block("Missing statement body in foreach loop.")
        return ForEach(variable.name, collection, body, start, self.i)

    def _function(self, start):
        self.skipSpace()
        match = _NAME.match(self.s, self.i)
        if match is None:
            self.fail("Missing name after function keyword.", incomplete=self.peek() == "")
        self.i = match.end()
        parameters = None
        self.skipSpace(newlines=True)
        if self.peek() == "(":
            self.i += 1
            parameters = self.parameterList()
        self.skipSpace(newlines=True)
        if self.peek() != "{":
            self.fail("Missing function body in function declaration.",
                      incomplete=self.peek() == "")
        brace = self.i
        self.i += 1
        self.nest(brace)
        self.skipSpace(newlines=True)
        while self.peek() == "[" and re.match(r"\[\s*CmdletBinding\s*\(", self.s[self.i:], re.I):
            self.attribute()
            self.skipSpace(newlines=True)
        if self.wordAt() == "param" and re.match(r"param\s*\(", self.s[self.i:], re.I):
            if parameters is not None:
                self.fail("A function cannot have both a parameter list after its name and a "
                          "param block.")
            self.i = self.s.index("(", self.i) + 1
            parameters = self.parameterList()
        statements = self.statements(closing="}")
        self.depth -= 1
        return FunctionDefinition(match.group(), parameters or (), statements, start, self.i)

    def parameterList(self):
        """
        The parameters of a function, after the C{(} that opens them.
        """
        declared = []
        while True:
            self.skipSpace(newlines=True)
            if self.peek() == ")":
                self.i += 1
                return tuple(declared)
            if self.peek() == "":
                self.fail("Missing ')' in function parameter list.", incomplete=True)
            start = self.i
            typeName, mandatory, pipeline = None, False, False
            while self.peek() == "[":
                name, arguments = self.attribute()
                if arguments is None:
                    typeName = name
                elif name.lower() == "parameter":
                    mandatory = _flag(arguments, "mandatory")
                    pipeline = _flag(arguments, "valuefrompipeline")
                self.skipSpace(newlines=True)
            if not (self.peek() == "$" and self.varStartsAt(self.i)):
                self.fail("Missing parameter name in function parameter list.",
                          incomplete=self.peek() == "")
            variable = self.variable()
            self.skipSpace(newlines=True)
            default = None
            if self.peek() == "=":
                self.i += 1
                self.skipSpace(newlines=True)
                saved, self.noComma = self.noComma, True
                default = self.expression()
                self.noComma = saved
                self.skipSpace(newlines=True)
            declared.append(ParameterDeclaration(
                variable.name, typeName, default, mandatory, pipeline, start, self.i))
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != ")":
                self.unexpected()

    def attribute(self):
        """
        C{[type]} or C{[Attribute(arguments)]}.

        @return: C{(name, arguments)}: the arguments' text split at commas,
            or C{None} for a type.
        """
        start = self.i
        match = re.compile(r"\[\s*([A-Za-z_][\w.]*(?:\[\])?)\s*").match(self.s, self.i)
        if match is None:
            self.fail("Missing type name after '['.", incomplete=self.peek(1) == "")
        self.i = match.end()
        arguments = None
        if self.peek() == "(":
            end = self.s.find(")", self.i)
            if end < 0:
                self.fail("Missing closing ')' in attribute.", start, incomplete=True)
            arguments = [part.strip() for part in self.s[self.i + 1 : end].split(",")]
            self.i = end + 1
            self.skipSpace()
        if self.peek() != "]":
            self.fail("Missing ']' after type name.", incomplete=self.peek() == "")
        self.i += 1
        return match.group(1), arguments

    def _try(self, start):
        body = self.block("Missing statement block after 'try'.")
        catches = []
        final = None
        while True:
            keyword = self.followedBy("catch", "finally")
            if keyword == "catch":
                catchStart = self.i - 5
                types = []
                self.skipSpace(newlines=True)
                while self.peek() == "[":
                    types.append(self.attribute()[0])
                    self.skipSpace(newlines=True)
                    if self.peek() == ",":
                        self.i += 1
                        self.skipSpace(newlines=True)
                statements = self.block("Missing statement block in catch clause.")
                catches.append(Catch(tuple(types), statements, catchStart, self.i))
                continue
            if keyword == "finally":
                final = self.block("Missing statement block after 'finally'.")
            break
        if not catches and final is None:
            self.skipSpace(newlines=True)
            self.fail("The Try statement is missing its Catch or Finally block.",
                      incomplete=self.peek() == "")
        return Try(body, tuple(catches), final, start, self.i)

    def _flow(self, start, keyword):
        self.skipSpace()
        value = None
        if keyword in ("throw", "return") and self.peek() not in ("", ";", "\r", "\n", ")", "}"):
            value = self.pipelineStatement()
        return Flow(keyword, value, start, self.i)

    def _throw(self, start):
        return self._flow(start, "throw")

    def _return(self, start):
        return self._flow(start, "return")

    def _break(self, start):
        return self._flow(start, "break")

    def _continue(self, start):
        return self._flow(start, "continue")

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


_KEYWORDS = ("if", "foreach", "while", "function", "try", "throw", "return", "break", "continue")
_ASSIGN = re.compile(r"(?:[-+*/]?=)(?!=)")
_NAME = re.compile(r"[A-Za-z_][\w-]*")


def _flag(arguments, name):
    """
    Whether an attribute's arguments set C{name} (C{Mandatory},
    C{Mandatory=$true}).
    """
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key.strip().lower() == name:
            return value.strip().lower() not in ("$false", "0")
    return False


def _missingClosing(closing):
    if closing == ")":
        return "Missing closing ')' in subexpression."
    return f"Missing closing '{closing}' in statement block or type definition."
