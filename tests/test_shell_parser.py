"""
The Shell's language: what exmta.shell.parser reads, and how it refuses
what it does not.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exmta.shell.cmdlet import ScriptBlock
from exmta.shell.parser import (
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
    ScriptBlockLiteral,
    ShellSyntaxError,
    SubExpression,
    Variable,
    parse,
)
from exmta.shell.syntax import MethodCall

# Every Shell example of "Configure Internet Mail Flow Through a Subscribed
# Edge Transport Server / an external SMTP gateway" (Exchange 2010), as printed.
REFERENCE = [
    "$mycred = Get-Credential",
    'New-SendConnector -Name "ToInternetGateway" -AddressSpaces "*" -SmartHosts "smtpgateway1.contoso.com" '
    "-SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS -AuthenticationCredential $mycred "
    '-SourceTransportServers "HubA" -DNSRoutingEnabled $false',
    'New-SendConnector -Name "ToInternetGateway" -Usage Internal -AddressSpaces "*" -SmartHosts '
    '"smtpgateway1.contoso.com" -SmartHostAuthMechanism ExternalAuthoritative -SourceTransportServers "HubA" '
    "-DNSRoutingEnabled $false",
    'New-ReceiveConnector -Name "FromInternetGateway" -Server HubA -Usage Internal -RemoteIPRanges 192.168.1.10 '
    "-AuthMechanism ExternalAuthoritative",
    'Get-ReceiveConnector "Receive Connector Name" | Add-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" '
    '-ExtendedRights "Ms-Exch-SMTP-Accept-Any-Recipient"',
    'New-SendConnector -Name "ToInternetGateway" -Usage Internet -AddressSpaces "*" -SmartHosts '
    '"smtpgateway1.contoso.com" -SmartHostAuthMechanism None -SourceTransportServers "HubA" -DNSRoutingEnabled $false',
    'New-ReceiveConnector -Name "FromInternetGateway" -Server HubA -Usage Custom -PermissionGroups AnonymousUsers '
    "-Bindings 10.2.3.4:25 -RemoteIpRanges 192.168.5.77",
    'Get-ReceiveConnector "FromInternetGateway" | Add-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" '
    '-ExtendedRights "Ms-Exch-SMTP-Accept-Any-Recipient"',
]


def one(text):
    """
    @return: the only pipeline of C{text}.
    """
    script = parse(text)
    assert len(script.statements) == 1
    return script.statements[0]


def command(text):
    """
    @return: C{(name, [(parameter or None, value)...])} of the only command
        of C{text}, values as plain Python values.
    """
    pipeline = one(text)
    assert len(pipeline.elements) == 1
    return summary(pipeline.elements[0])


def summary(node):
    assert isinstance(node, Command)
    elements = []
    for element in node.elements:
        if isinstance(element, CommandParameter):
            elements.append((element.name, plain(element.argument) if element.colon else None))
        else:
            elements.append((None, plain(element)))
    return node.name, elements


def plain(node):
    if node is None:
        return None
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, Variable):
        return ("$", node.name)
    if isinstance(node, ArrayLiteral):
        return [plain(item) for item in node.items]
    if isinstance(node, ScriptBlockLiteral):
        return node.block
    return node


def test_referenceBasicAuth():
    assert one(REFERENCE[0]).assignTo == "mycred"
    assert summary(one(REFERENCE[0]).elements[0]) == ("Get-Credential", [])
    assert command(REFERENCE[1]) == (
        "New-SendConnector",
        [
            ("Name", None),
            (None, "ToInternetGateway"),
            ("AddressSpaces", None),
            (None, "*"),
            ("SmartHosts", None),
            (None, "smtpgateway1.contoso.com"),
            ("SmartHostAuthMechanism", None),
            (None, ["BasicAuth", "BasicAuthRequireTLS"]),
            ("AuthenticationCredential", None),
            (None, ("$", "mycred")),
            ("SourceTransportServers", None),
            (None, "HubA"),
            ("DNSRoutingEnabled", None),
            (None, ("$", "false")),
        ],
    )


def test_referenceExternallySecured():
    name, elements = command(REFERENCE[2])
    assert name == "New-SendConnector"
    assert ("Usage", None) in elements and (None, "Internal") in elements
    assert (None, "ExternalAuthoritative") in elements
    assert command(REFERENCE[3]) == (
        "New-ReceiveConnector",
        [
            ("Name", None),
            (None, "FromInternetGateway"),
            ("Server", None),
            (None, "HubA"),
            ("Usage", None),
            (None, "Internal"),
            ("RemoteIPRanges", None),
            (None, "192.168.1.10"),
            ("AuthMechanism", None),
            (None, "ExternalAuthoritative"),
        ],
    )


@pytest.mark.parametrize("line", [REFERENCE[4], REFERENCE[7]])
def test_referencePipelineToAddADPermission(line):
    pipeline = one(line)
    assert pipeline.assignTo is None
    first, second = pipeline.elements
    name = "Receive Connector Name" if "Receive Connector Name" in line else "FromInternetGateway"
    assert summary(first) == ("Get-ReceiveConnector", [(None, name)])
    assert summary(second) == (
        "Add-ADPermission",
        [
            ("User", None),
            (None, "NT AUTHORITY\\ANONYMOUS LOGON"),
            ("ExtendedRights", None),
            (None, "Ms-Exch-SMTP-Accept-Any-Recipient"),
        ],
    )


def test_referenceAnonymousRelay():
    name, elements = command(REFERENCE[5])
    assert name == "New-SendConnector" and (None, "None") in elements
    assert command(REFERENCE[6]) == (
        "New-ReceiveConnector",
        [
            ("Name", None),
            (None, "FromInternetGateway"),
            ("Server", None),
            (None, "HubA"),
            ("Usage", None),
            (None, "Custom"),
            ("PermissionGroups", None),
            (None, "AnonymousUsers"),
            ("Bindings", None),
            (None, "10.2.3.4:25"),
            ("RemoteIpRanges", None),
            (None, "192.168.5.77"),
        ],
    )


def test_referenceAsOneScript():
    """
    The document's lines pasted together, one a line, are one script.
    """
    script = parse("\n".join(REFERENCE) + "\n")
    assert len(script.statements) == len(REFERENCE)


def test_statementSeparators():
    script = parse("a; b\nc\r\nd;;\n\n e ;")
    assert [s.elements[0].name for s in script.statements] == ["a", "b", "c", "d", "e"]


def test_pipelines():
    pipeline = one("a -x 1 | b | c")
    assert [summary(e)[0] for e in pipeline.elements] == ["a", "b", "c"]
    # A line ending in | continues on the next.
    assert len(one("a |\n  b").elements) == 2


def test_colonArguments():
    assert command("Remove-SendConnector X -Confirm:$false -WhatIf -Name:'y' -Count: 3") == (
        "Remove-SendConnector",
        [(None, "X"), ("Confirm", ("$", "false")), ("WhatIf", None), ("Name", "y"), ("Count", 3)],
    )
    # -Name: with nothing after it is parsed; the runtime says an argument is missing.
    parameter = one("a -Name:").elements[0].elements[0]
    assert parameter.colon and parameter.argument is None


def test_barewords():
    assert command(
        "a HubA 10.2.3.4:25 192.168.1.10 [::1]:2525 * smtp:*.contoso.com user@fabrikam.com C:\\x"
    )[1] == [
        (None, "HubA"),
        (None, "10.2.3.4:25"),
        (None, "192.168.1.10"),
        (None, "[::1]:2525"),
        (None, "*"),
        (None, "smtp:*.contoso.com"),
        (None, "user@fabrikam.com"),
        (None, "C:\\x"),
    ]


def test_semicolonEndsABareword():
    script = parse("a smtp:*.contoso.com;1")
    assert len(script.statements) == 2


def test_commaLists():
    assert command("a BasicAuth,BasicAuthRequireTLS")[1] == [
        (None, ["BasicAuth", "BasicAuthRequireTLS"])
    ]
    assert command("a \"x\", 'y' ,z")[1] == [(None, ["x", "y", "z"])]
    assert command("a -P 1,\n 2")[1] == [("P", None), (None, [1, 2])]


def test_numbers():
    assert command("a 25 0x19 10MB 1.5 -5 1kb 1.5GB 007")[1] == [
        (None, 25),
        (None, 25),
        (None, 10 * 1024 * 1024),
        (None, 1.5),
        (None, -5),
        (None, 1024),
        (None, int(1.5 * 2**30)),
        (None, 7),
    ]


def test_singleQuoted():
    assert command("a 'it''s $x `n' ''")[1] == [(None, "it's $x `n"), (None, "")]


def test_doubleQuoted():
    node = one('a "x ""y"" `t`"$name`$ ${odd name} $env:HOME"').elements[0].elements[0]
    assert isinstance(node, ExpandableString)
    assert node.parts[0] == 'x "y" \t"'
    assert node.parts[1] == Variable("name", node.parts[1].start, node.parts[1].end)
    assert node.parts[2] == "$ "
    assert node.parts[3].name == "odd name"
    assert node.parts[5].name == "env:HOME"
    assert command('a "no variables" "`u{263A}" "$"')[1] == [
        (None, "no variables"),
        (None, "\u263a"),
        (None, "$"),
    ]


def test_subexpressionInString():
    node = one('a "user $($c.UserName)!"').elements[0].elements[0]
    assert isinstance(node.parts[1], SubExpression)
    assert isinstance(node.parts[1].statements[0].elements[0], Member)


def test_typographicQuotesAndDashes():
    """
    Lines pasted from a word processor keep working.
    """
    assert command(
        "New-SendConnector \u2013Name \u201cTo Gateway\u201d \u2014Usage \u2018Custom\u2019"
    )[1] == [
        ("Name", None),
        (None, "To Gateway"),
        ("Usage", None),
        (None, "Custom"),
    ]


def test_variablesAndMembers():
    node = one("a $c.UserName $c.GetNetworkCredential().Password $_ $true").elements[0]
    first, second, third, fourth = node.elements
    assert isinstance(first, Member) and first.name == "UserName" and first.target.name == "c"
    assert isinstance(second, Member) and second.name == "Password"
    assert isinstance(second.target, MethodCall) and second.target.name == "GetNetworkCredential"
    assert third.name == "_" and fourth.name == "true"


def test_adjacentPiecesAreOneArgument():
    node = one('a pre"fix"$x-post').elements[0].elements[0]
    assert isinstance(node, Composite) and len(node.pieces) == 4


def test_assignments():
    pipeline = one("$mycred = Get-Credential")
    assert pipeline.assignTo == "mycred"
    assert one("$x = 1,2").elements[0] == ArrayLiteral(one("$x = 1,2").elements[0].items, 5, 8)
    assert one("$x=\n 'a'").assignTo == "x"
    assert one("$global:x = $null").assignTo == "global:x"


def test_expressionsStartPipelines():
    pipeline = one('"a","b" | Write-Output')
    assert isinstance(pipeline.elements[0], ArrayLiteral)
    assert isinstance(one("$mycred | Format-List").elements[0], Variable)
    assert isinstance(one("(Get-Thing).Name").elements[0], Member)
    assert isinstance(one("5").elements[0], Constant)


def test_brackets():
    node = one("a (Get-Credential) @(b; c) $(d) @{Add='1.2.3.4','5.6.7.8'; 'Remove' = x}").elements[
        0
    ]
    paren, array, sub, table = node.elements
    assert isinstance(paren, Paren) and paren.pipeline.elements[0].name == "Get-Credential"
    assert isinstance(array, ArrayExpression) and len(array.statements) == 2
    assert isinstance(sub, SubExpression)
    assert isinstance(table, HashLiteral)
    assert [key for key, _ in table.pairs] == ["Add", "Remove"]


def test_scriptBlocksAreText():
    node = one('Get-Message -Filter {FromAddress -eq "}{" -and {nested}} # c').elements[0]
    assert node.elements[1] == ScriptBlockLiteral(
        ScriptBlock('FromAddress -eq "}{" -and {nested}'),
        node.elements[1].start,
        node.elements[1].end,
    )
    assert str(node.elements[1].block) == 'FromAddress -eq "}{" -and {nested}'


def test_comments():
    script = parse("# a comment\na -x 1 # trailing\n<# block\n comment #> b\nc a#b")
    assert [summary(s.elements[0]) for s in script.statements] == [
        ("a", [("x", None), (None, 1)]),
        ("b", []),
        ("c", [(None, "a#b")]),
    ]


def test_lineContinuation():
    assert command("New-Thing -Name x `\n  -Count 2")[1] == [
        ("Name", None),
        (None, "x"),
        ("Count", None),
        (None, 2),
    ]
    assert command("a -x 1 `\r\n -y 2")[1][2] == ("y", None)


def test_backtickEscapesInBarewords():
    assert command("a x` y")[1] == [(None, "x y")]


# Errors: PowerShell's message, the line and column of the token at fault.


def failure(text):
    with pytest.raises(ShellSyntaxError) as caught:
        parse(text)
    return caught.value


@pytest.mark.parametrize(
    "text, message, column, incomplete",
    [
        (
            'New-SendConnector -Name "ToInternetGateway',
            'The string is missing the terminator: ".',
            25,
            True,
        ),
        ("a 'x", "The string is missing the terminator: '.", 3, True),
        ("a |", "An empty pipe element is not allowed.", 3, True),
        ("a | | b", "An empty pipe element is not allowed.", 3, False),
        ("| a", "Unexpected token '|' in expression or statement.", 1, False),
        ("$x =", "You must provide a value expression following the '=' operator.", 5, True),
        ("a -Name x,", "Missing expression after ','.", 10, True),
        ("a (b", "Missing closing ')' in expression.", 3, True),
        ("a { b", "Missing closing '}' in statement block or type definition.", 3, True),
        ("a @{x", "Missing '=' operator after key in hash literal.", 6, True),
        ("a )", "Unexpected token ')' in expression or statement.", 3, False),
        ("a }", "Unexpected token '}' in expression or statement.", 3, False),
        ('"x" y', "Unexpected token 'y' in expression or statement.", 5, False),
        ("$x = 1 2", "Unexpected token '2' in expression or statement.", 8, False),
        ("a & b", "The ampersand (&) character is not allowed.", 3, False),
        ("a > out.txt", "The '>' operator is reserved for future use", 3, False),
        ("a && b", "The token '&&' is not a valid statement separator in this version.", 3, False),
        ("a || b", "The token '||' is not a valid statement separator in this version.", 3, False),
        ("a | $x", "Expressions are only allowed as the first element of a pipeline.", 5, False),
        ("a `", "Missing the line that the backtick (`) at the end continues.", 3, True),
        ("a <# b", "Missing the terminator '#>' of a block comment.", 3, True),
        ("a $c.M(1", "Missing ')' in method call.", 7, True),
        ("if (1) {", "Missing closing '}' in statement block or type definition.", 9, True),
        ("if ($x -eq) { }", "You must provide a value expression following the '-eq' operator.", 11, False),
        ("foreach ($s Get-X) { }", "Missing 'in' after variable in foreach loop.", 13, False),
        ("try { }", "The Try statement is missing its Catch or Finally block.", 8, True),
        ("function { }", "Missing name after function keyword.", 10, False),
        ("1 +", "You must provide a value expression following the '+' operator.", 4, True),
        ("a $(b", "Missing closing ')' in subexpression.", 6, True),
        ("a\nb 'x", "The string is missing the terminator: '.", 3, True),
    ],
)
def test_errors(text, message, column, incomplete):
    error = failure(text)
    assert error.message.startswith(message)
    assert error.column == column
    assert error.incomplete == incomplete
    assert error.line == text.count("\n", 0, error.offset) + 1


def test_errorTextIsPowerShells():
    error = failure('New-SendConnector -Name "ToInternetGateway')
    assert str(error) == (
        "At line:1 char:25\n"
        '+ New-SendConnector -Name "ToInternetGateway\n'
        "+                         ~~~~~~~~~~~~~~~~~~\n"
        'The string is missing the terminator: ".'
    )
    error = failure("a\n  b )")
    assert str(error).splitlines()[:3] == ["At line:2 char:5", "+   b )", "+     ~"]


def test_errorNamesTheToken():
    assert (
        failure("$x = 1 Get-Foo").message
        == "Unexpected token 'Get-Foo' in expression or statement."
    )


def test_tooDeep():
    assert failure("a " + "(" * 200 + "b" + ")" * 200).message == "The script is nested too deeply."
    assert failure("$x = " + "@(" * 100).message == "The script is nested too deeply."
    assert failure("$x = " + ",(" * 100).message == "The script is nested too deeply."


# Any text parses or is refused with a ShellSyntaxError; nothing else.

_SHELLISH = st.text(
    alphabet=st.sampled_from(list("ab-$'\"`(){}[]@,;|&<>#=:.*?!1 \t\n\r\u2013\u201c\u2019xyz_")),
    max_size=60,
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=80), _SHELLISH))
def test_anyTextParsesOrIsRefused(text):
    try:
        parse(text)
    except ShellSyntaxError as error:
        assert error.message
        assert 1 <= error.line and 1 <= error.column
        str(error)


_WORD = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True)
_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(_WORD, st.lists(st.tuples(_WORD, _VALUE), max_size=5))
def test_singleQuotedValuesRoundTrip(name, arguments):
    """
    Any text, single-quoted with its quotes doubled, reads back as itself.
    """

    def quote(value):
        return "'" + "".join(c + c if c in "'\u2018\u2019\u201a\u201b" else c for c in value) + "'"

    text = f"Verb-{name} " + " ".join(
        f"-{parameter} {quote(value)}" for parameter, value in arguments
    )
    _, elements = command(text)
    assert elements == [
        item for parameter, value in arguments for item in ((parameter, None), (None, value))
    ]
