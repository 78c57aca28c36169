"""
Running the Shell's language: PowerShell's parameter binding, the pipeline,
variables, errors, formatting, the built-in cmdlets, and C{exmta shell}
itself in a subprocess and on a terminal.

The cmdlets here are test doubles registered in a registry of the tests'
own, declared with the parameters of Exchange's cmdlets; they record how
they were called.
"""

import os
import pty
import select
import stat
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exmta.shell.builtins  # noqa: F401 - registers the built-in cmdlets
from exmta.shell.cmdlet import (
    CMDLETS,
    CmdletError,
    Parameter,
    PSCredential,
    SecureString,
    cmdlet,
    identityOf,
    revealPassword,
)
from exmta.shell.format import formatDefault, formatList, formatTable
from exmta.shell.host import MemoryHost
from exmta.shell.main import completions, parseArguments
from exmta.shell.parser import ShellSyntaxError
from exmta.shell.runtime import ExitRequest, Session, ShellError
from tests.test_shell_parser import REFERENCE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "S3cr3t-Gateway-Value"
BUILTINS = {
    key: value
    for key, value in CMDLETS.items()
    if value.function.__module__ == "exmta.shell.builtins"
}


@dataclass(frozen=True)
class Connector:
    Identity: str
    Name: str
    Server: str
    Usage: str
    RemoteIPRanges: tuple
    Enabled: bool = True


CONNECTORS = [
    Connector("HubA\\Client HubA", "Client HubA", "HubA", "Client", ("0.0.0.0-255.255.255.255",)),
    Connector(
        "HubA\\FromInternetGateway", "FromInternetGateway", "HubA", "Custom", ("192.168.5.77",)
    ),
    Connector(
        "HubA\\Receive Connector Name",
        "Receive Connector Name",
        "HubA",
        "Custom",
        ("192.168.1.10",),
    ),
]


def registry(calls):
    """
    The built-in cmdlets and test doubles of Exchange's, which append
    C{(name, arguments, context)} to C{calls}.
    """
    cmdlets = dict(BUILTINS)

    def record(name):
        def function(context, **arguments):
            calls.append((name, arguments, context))
            return arguments.get("Name")

        return function

    cmdlet(
        "New-SendConnector",
        Parameter("Name", mandatory=True, position=0),
        Parameter("Usage"),
        Parameter("AddressSpaces", kind="list"),
        Parameter("SmartHosts", kind="list"),
        Parameter("SmartHostAuthMechanism", kind="list"),
        Parameter("AuthenticationCredential"),
        Parameter("SourceTransportServers", kind="list"),
        Parameter("DNSRoutingEnabled"),
        supportsWhatIf=True,
        registry=cmdlets,
    )(record("New-SendConnector"))
    cmdlet(
        "New-ReceiveConnector",
        Parameter("Name", mandatory=True, position=0),
        Parameter("Server"),
        Parameter("Usage"),
        Parameter("RemoteIPRanges", kind="list"),
        Parameter("AuthMechanism", kind="list"),
        Parameter("PermissionGroups", kind="list"),
        Parameter("Bindings", kind="list"),
        supportsWhatIf=True,
        registry=cmdlets,
    )(record("New-ReceiveConnector"))

    @cmdlet(
        "Get-ReceiveConnector", Parameter("Identity", position=0, pipeline=True), registry=cmdlets
    )
    def getReceiveConnector(context, Identity=None):
        calls.append(("Get-ReceiveConnector", {"Identity": Identity}, context))
        if Identity is None:
            yield from CONNECTORS
            return
        wanted = identityOf(Identity).lower()
        found = [c for c in CONNECTORS if wanted in (c.Name.lower(), c.Identity.lower())]
        if not found:
            raise CmdletError(
                f"The operation couldn't be performed because object '{Identity}' couldn't be found."
            )
        yield from found

    @cmdlet(
        "Add-ADPermission",
        Parameter("Identity", mandatory=True, position=0, pipeline=True),
        Parameter("User", mandatory=True, pipeline=True),
        Parameter("ExtendedRights", kind="list"),
        Parameter("AccessRights", kind="list"),
        supportsWhatIf=True,
        registry=cmdlets,
    )
    def addADPermission(context, Identity, User, ExtendedRights=None, AccessRights=None):
        calls.append(
            (
                "Add-ADPermission",
                {"Identity": Identity, "User": User, "ExtendedRights": ExtendedRights},
                context,
            )
        )
        if context.shouldProcess(f"Adding permission to {identityOf(Identity)}"):
            return {
                "Identity": identityOf(Identity),
                "User": User,
                "ExtendedRights": ExtendedRights,
            }
        return None

    cmdlet(
        "Test-Thing",
        Parameter("Name", position=0),
        Parameter("NameSuffix"),
        Parameter("Count", position=1),
        Parameter("SmartHosts", kind="list"),
        Parameter("SmartHostAuthMechanism", kind="list"),
        Parameter("SourceTransportServers", kind="list"),
        Parameter("RemoteIPRanges", kind="list", aliases=("RemoteIPs",)),
        Parameter("Port"),
        Parameter("Force", kind="switch"),
        registry=cmdlets,
    )(record("Test-Thing"))

    @cmdlet("Fail-Thing", Parameter("Name", position=0), registry=cmdlets)
    def failThing(context, Name=None):
        raise CmdletError(f"The thing '{Name}' failed.")

    @cmdlet("Broken-Thing", registry=cmdlets)
    def brokenThing(context):
        raise ValueError("boom")

    @cmdlet("Open-Thing", registry=cmdlets)
    def openThing(context):
        open(os.path.join(os.sep, "nonexistent", "org.ini"))

    @cmdlet("Half-Thing", Parameter("Identity", position=0, pipeline=True), registry=cmdlets)
    def halfThing(context, Identity):
        if "Client" in identityOf(Identity):
            context.writeError(f"Cannot change '{identityOf(Identity)}'.")
            return None
        return identityOf(Identity)

    @cmdlet(
        "Count-Input", Parameter("InputObject", pipeline=True), collectInput=True, registry=cmdlets
    )
    def countInput(context, InputObject=()):
        calls.append(("Count-Input", {"InputObject": InputObject}, context))
        return len(InputObject)

    @cmdlet("Speak-Thing", registry=cmdlets)
    def speakThing(context):
        context.writeVerbose("speaking")
        context.writeWarning("careful")
        return "spoken"

    @cmdlet("Secret-Thing", registry=cmdlets)
    def secretThing(context):
        return {"Name": "smtpgateway", "Password": SECRET, "SecurePassword": SecureString(SECRET)}

    return cmdlets


class Shell:
    """
    A session on test doubles, with a host that answers prompts from
    C{lines}.
    """

    def __init__(self, lines=()):
        self.calls = []
        self.host = MemoryHost(lines)
        self.session = Session("org.ini", self.host, cmdlets=registry(self.calls))

    def run(self, text):
        return self.session.run(text)

    def invoke(self, text):
        return self.session.invoke(text)

    def arguments(self, name=None):
        """
        @return: the arguments of the last call (of C{name}).
        """
        calls = [call for call in self.calls if name is None or call[0] == name]
        return calls[-1][1]

    def error(self, text):
        """
        @return: the error C{text} fails with (the message, without the position).
        """
        with pytest.raises(ShellError) as caught:
            self.invoke(text)
        return caught.value

    @property
    def output(self):
        return "\n".join(self.host.output)

    @property
    def errors(self):
        return "\n".join(self.host.errors)


@pytest.fixture
def shell():
    return Shell()


# The reference document's lines, bound as Exchange binds them.


def test_referenceBasicAuth():
    shell = Shell(["smtpgateway@contoso.com", SECRET])
    assert shell.run(REFERENCE[0])
    assert shell.run(REFERENCE[1]), shell.errors
    arguments = shell.arguments("New-SendConnector")
    credential = arguments.pop("AuthenticationCredential")
    assert isinstance(credential, PSCredential)
    assert (credential.UserName, credential.Password) == ("smtpgateway@contoso.com", SECRET)
    assert arguments == {
        "Name": "ToInternetGateway",
        "AddressSpaces": ("*",),
        "SmartHosts": ("smtpgateway1.contoso.com",),
        "SmartHostAuthMechanism": ("BasicAuth", "BasicAuthRequireTLS"),
        "SourceTransportServers": ("HubA",),
        "DNSRoutingEnabled": False,
    }
    assert SECRET not in shell.output + shell.errors


def test_referenceExternallySecuredAndAnonymousRelay(shell):
    assert shell.run(REFERENCE[2])
    assert shell.arguments("New-SendConnector")["SmartHostAuthMechanism"] == (
        "ExternalAuthoritative",
    )
    assert shell.arguments("New-SendConnector")["Usage"] == "Internal"
    assert shell.run(REFERENCE[3])
    assert shell.arguments("New-ReceiveConnector") == {
        "Name": "FromInternetGateway",
        "Server": "HubA",
        "Usage": "Internal",
        "RemoteIPRanges": ("192.168.1.10",),
        "AuthMechanism": ("ExternalAuthoritative",),
    }
    assert shell.run(REFERENCE[5])
    assert shell.arguments("New-SendConnector")["SmartHostAuthMechanism"] == ("None",)
    assert shell.run(REFERENCE[6])
    assert shell.arguments("New-ReceiveConnector") == {
        "Name": "FromInternetGateway",
        "Server": "HubA",
        "Usage": "Custom",
        "PermissionGroups": ("AnonymousUsers",),
        "Bindings": ("10.2.3.4:25",),
        "RemoteIPRanges": ("192.168.5.77",),
    }


@pytest.mark.parametrize(
    "line, connector", [(REFERENCE[4], CONNECTORS[2]), (REFERENCE[7], CONNECTORS[1])]
)
def test_referencePipeline(shell, line, connector):
    """
    The connector Get-ReceiveConnector outputs binds Add-ADPermission's
    Identity: the whole object.
    """
    output = shell.invoke(line)
    arguments = shell.arguments("Add-ADPermission")
    assert arguments == {
        "Identity": connector,
        "User": "NT AUTHORITY\\ANONYMOUS LOGON",
        "ExtendedRights": ("Ms-Exch-SMTP-Accept-Any-Recipient",),
    }
    assert output == [
        {
            "Identity": connector.Identity,
            "User": "NT AUTHORITY\\ANONYMOUS LOGON",
            "ExtendedRights": ("Ms-Exch-SMTP-Accept-Any-Recipient",),
        }
    ]


# Parameter names.


def test_namesAreCaseInsensitive(shell):
    shell.invoke("test-thing -SOURCETRANSPORTSERVERS HubA -force")
    assert shell.arguments() == {"SourceTransportServers": ("HubA",), "Force": True}
    assert shell.calls[-1][0] == "Test-Thing"


def test_abbreviations(shell):
    shell.invoke("test-thing -SOU HubA -SmartHostA BasicAuth -Fo -Remote 1.2.3.4")
    assert shell.arguments() == {
        "SourceTransportServers": ("HubA",),
        "SmartHostAuthMechanism": ("BasicAuth",),
        "Force": True,
        "RemoteIPRanges": ("1.2.3.4",),
    }


def test_exactNameWinsOverPrefixes(shell):
    shell.invoke("Test-Thing -smarthosts a -name b")
    assert shell.arguments() == {"SmartHosts": ("a",), "Name": "b"}


def test_ambiguousPrefix(shell):
    error = shell.error("Test-Thing -Smart x")
    assert error.message == (
        "Parameter cannot be processed because the parameter name 'Smart' is ambiguous. "
        "Possible matches include: -SmartHosts -SmartHostAuthMechanism."
    )
    assert error.command == "Test-Thing"
    assert str(error).splitlines()[1:] == [
        "At line:1 char:12",
        "+ Test-Thing -Smart x",
        "+            ~~~~~~",
    ]
    assert "-Name -NameSuffix" in shell.error("Test-Thing -Nam x").message


def test_aPrefixSharedWithCommonParametersNamesTheCmdletsOwn(shell):
    shell.invoke("Test-Thing -P 25")
    assert shell.arguments() == {"Port": 25}


def test_aliases(shell):
    shell.invoke("Test-Thing -RemoteIPs 10.0.0.1,10.0.0.2")
    assert shell.arguments() == {"RemoteIPRanges": ("10.0.0.1", "10.0.0.2")}


def test_unknownParameter(shell):
    error = shell.error("Test-Thing -Frob x")
    assert error.message == "A parameter cannot be found that matches parameter name 'Frob'."
    assert str(error).startswith(
        "Test-Thing : A parameter cannot be found that matches parameter name 'Frob'.\n"
    )
    assert str(error).splitlines()[1] == "At line:1 char:12"


def test_positional(shell):
    shell.invoke("Test-Thing HubA 3 -Force")
    assert shell.arguments() == {"Name": "HubA", "Count": 3, "Force": True}
    shell.invoke("Test-Thing -Name HubA 3")
    assert shell.arguments() == {"Name": "HubA", "Count": 3}
    error = shell.error("Test-Thing a b 'c d'")
    assert error.message == "A positional parameter cannot be found that accepts argument ''c d''."


def test_missingArgument(shell):
    for text in ("Test-Thing -Name", "Test-Thing -Name -Force", "Test-Thing -Name:"):
        assert shell.error(text).message == (
            "Missing an argument for parameter 'Name'. Specify a parameter of type 'System.Object' and try again."
        )


def test_specifiedTwice(shell):
    assert shell.error("Test-Thing -Name a -NAME b").message.startswith(
        "Cannot bind parameter because parameter 'Name' is specified more than once."
    )


def test_switches(shell):
    shell.invoke("Test-Thing -Force:$false")
    assert shell.arguments() == {"Force": False}
    shell.invoke("Test-Thing -Force:$true -Name x")
    assert shell.arguments() == {"Force": True, "Name": "x"}
    shell.invoke("Test-Thing")
    assert shell.arguments() == {}
    assert "SwitchParameter" in shell.error("Test-Thing -Force:'yes'").message


def test_listsAndValues(shell):
    shell.invoke("Test-Thing -SmartHosts one -Name 'a','b' -Count $null -RemoteIPRanges $null")
    assert shell.arguments() == {
        "SmartHosts": ("one",),
        "Name": ("a", "b"),
        "Count": None,
        "RemoteIPRanges": None,
    }


def test_confirmIsAcceptedAndIgnored(shell):
    shell.invoke("Test-Thing x -Confirm:$false")
    assert shell.arguments() == {"Name": "x"}
    shell.invoke("Test-Thing x -Confirm")
    assert shell.arguments() == {"Name": "x"}


def test_whatIf(shell):
    assert shell.invoke("New-SendConnector X -WhatIf") == ["X"]
    assert shell.calls[-1][2].whatIf is True
    shell.invoke("New-SendConnector X")
    assert shell.calls[-1][2].whatIf is False
    assert (
        shell.error("Test-Thing -WhatIf").message
        == "A parameter cannot be found that matches parameter name 'WhatIf'."
    )


def test_shouldProcessPrintsWhatIf(shell):
    assert shell.run("Get-ReceiveConnector FromInternetGateway | Add-ADPermission -User u -WhatIf")
    assert shell.host.output == ["What if: Adding permission to HubA\\FromInternetGateway"]


def test_verboseAndWarnings(shell):
    assert shell.invoke("Speak-Thing") == ["spoken"]
    assert shell.host.errors == ["WARNING: careful"]
    shell.invoke("Speak-Thing -Verbose")
    assert shell.host.errors[1:] == ["VERBOSE: speaking", "WARNING: careful"]


def test_errorAction(shell):
    # Not shown, and the exit status stays 0; $? is $false, as in PowerShell.
    shell.run("Fail-Thing x -ErrorAction SilentlyContinue; $ok = $?; Fail-Thing y -ea Ignore")
    assert not shell.session.failed and shell.errors == ""
    assert shell.session.variables["ok"] is False
    assert not shell.run("Fail-Thing x -ErrorAction Stop")
    assert "ActionPreference" in shell.error("Test-Thing -ErrorAction Sometimes").message


def test_mandatoryParameters(shell):
    error = shell.error("New-SendConnector -Usage Internet")
    assert (
        error.message
        == "Cannot process command because of one or more missing mandatory parameters: Name."
    )
    assert error.command == "New-SendConnector"
    # A pipeline parameter may come from each object piped in: when it
    # does not, that object fails, and the next is tried.
    assert not shell.run("Get-ReceiveConnector | Add-ADPermission")
    assert shell.errors.count("missing mandatory parameters: User.") == 3
    assert "Add-ADPermission" not in [call[0] for call in shell.calls]


# The pipeline.


def test_pipelineBindsIdentityToTheWholeObject(shell):
    assert shell.invoke("Get-ReceiveConnector | Half-Thing") == [
        CONNECTORS[1].Identity,
        CONNECTORS[2].Identity,
    ]
    assert "Half-Thing : Cannot change 'HubA\\Client HubA'." in shell.errors
    assert shell.session.failed


def test_pipelineBindsTextToIdentity(shell):
    assert (
        shell.invoke('"FromInternetGateway", "Receive Connector Name" | Get-ReceiveConnector')
        == CONNECTORS[1:]
    )


def test_pipelineBindsPropertiesByName(shell):
    shell.invoke("@{Identity='Client HubA'; User='kim'} | Add-ADPermission -ExtendedRights x")
    assert shell.arguments("Add-ADPermission")["User"] == "kim"
    assert shell.arguments("Add-ADPermission")["Identity"] == {
        "Identity": "Client HubA",
        "User": "kim",
    }


def test_pipelineObjectThatBindsNothing(shell):
    assert not shell.run("1, 2 | Test-Thing")
    assert (
        shell.errors.count("The input object cannot be bound to any parameters for the command")
        == 2
    )


def test_pipelineParameterGivenOnTheCommandLineIsNotRebound(shell):
    """
    As in PowerShell: with -Identity on the command line, the object piped
    in has nothing left to bind.
    """
    assert not shell.run(
        "Get-ReceiveConnector 'Client HubA' | Add-ADPermission -Identity Other -User u"
    )
    assert "The input object cannot be bound to any parameters" in shell.errors
    assert "Add-ADPermission" not in [call[0] for call in shell.calls]


def test_collectInput(shell):
    assert shell.invoke("Get-ReceiveConnector | Count-Input") == [3]
    assert shell.arguments("Count-Input")["InputObject"] == tuple(CONNECTORS)
    assert shell.invoke("Count-Input") == [0]


def test_argumentsAreBoundBeforeAnythingRuns(shell):
    shell.error("Get-ReceiveConnector | Test-Thing -Frob")
    assert shell.calls == []


# Errors.


def test_unknownCmdlet(shell):
    assert not shell.run("Get-SendConector -Identity x; Test-Thing")
    assert shell.errors.splitlines()[:5] == [
        "Get-SendConector : The term 'Get-SendConector' is not recognized as the name of a cmdlet, function, "
        "script file, or operable program. Check the spelling of the name, or if a path was included, verify "
        "that the path is correct and try again.",
        "Suggestion: the most similar commands are: New-SendConnector.",
        "At line:1 char:1",
        "+ Get-SendConector -Identity x; Test-Thing",
        "+ ~~~~~~~~~~~~~~~~",
    ]
    # The next statement ran.
    assert shell.calls[-1][0] == "Test-Thing"
    assert shell.session.failed


def test_keywords(shell):
    assert (
        "does not run PowerShell's 'switch' statement"
        in shell.error("switch ($x) { 1 { Test-Thing } }").message
    )


def test_exit(shell):
    with pytest.raises(ExitRequest) as caught:
        shell.run("exit 3")
    assert caught.value.status == 3
    with pytest.raises(ExitRequest) as caught:
        shell.run("exit")
    assert caught.value.status == 0
    shell.run("Fail-Thing")
    with pytest.raises(ExitRequest) as caught:
        shell.run("exit")
    assert caught.value.status == 1


def test_cmdletErrors(shell):
    assert not shell.run("Test-Thing a; Fail-Thing X; Test-Thing b")
    assert (
        shell.errors
        == "Fail-Thing : The thing 'X' failed.\nAt line:1 char:15\n+ Test-Thing a; Fail-Thing X; Test-Thing b\n+               ~~~~~~~~~~~~"
    )
    assert [call[1] for call in shell.calls] == [{"Name": "a"}, {"Name": "b"}]


def test_unexpectedErrorsShowNoTraceback(shell):
    assert not shell.run("Broken-Thing")
    assert shell.errors.startswith("Broken-Thing : ValueError: boom (an error in exmta;")
    assert "Traceback" not in shell.errors
    assert not shell.run("Open-Thing")
    assert (
        f"Open-Thing : {os.sep}nonexistent{os.sep}org.ini: No such file or directory"
        in shell.errors
    )


def test_syntaxErrorsRunNothing(shell):
    assert not shell.run("Test-Thing a; Test-Thing 'b")
    assert shell.calls == []
    assert shell.errors.endswith("The string is missing the terminator: '.")
    with pytest.raises(ShellSyntaxError):
        shell.invoke("Test-Thing (")


def test_outputBeforeAnErrorIsShown(shell):
    assert not shell.run("Get-ReceiveConnector | ForEach-Object Name | Fail-Thing")
    assert not shell.run("'a', 'b' | Write-Output; Fail-Thing")
    assert shell.host.output == ["a\nb"]


# Variables and values.


def test_variablesPersistAcrossLines(shell):
    shell.run("$name = 'ToInternetGateway'")
    shell.run("$hosts = 'a.contoso.com', 'b.contoso.com'")
    shell.run("New-SendConnector $name -SmartHosts $hosts -DNSRoutingEnabled $FALSE")
    assert shell.arguments() == {
        "Name": "ToInternetGateway",
        "SmartHosts": ("a.contoso.com", "b.contoso.com"),
        "DNSRoutingEnabled": False,
    }
    assert shell.session.variables["name"] == "ToInternetGateway"


def test_assignments(shell):
    shell.run(
        "$one = Get-ReceiveConnector 'Client HubA'; $all = Get-ReceiveConnector; $none = Write-Output"
    )
    assert shell.session.variables["one"] == CONNECTORS[0]
    assert shell.session.variables["all"] == tuple(CONNECTORS)
    assert shell.session.variables["none"] is None
    assert shell.run("$null = Test-Thing x") and shell.output == ""
    assert (
        shell.error("$true = 1").message
        == "Cannot overwrite variable true because it is read-only or constant."
    )
    assert shell.invoke("$undefined") == []


def test_expansionAndMembers(shell):
    shell.run("$c = Get-ReceiveConnector FromInternetGateway")
    assert shell.invoke('"Server $($c.Server), $c.Name"') == [
        f"Server HubA, {CONNECTORS[1].Identity}.Name"
    ]
    assert shell.invoke("$c.RemoteIPRanges") == ["192.168.5.77"]
    assert shell.invoke("(Get-ReceiveConnector).Name") == [c.Name for c in CONNECTORS]
    assert shell.invoke("Write-Output pre-$($c.Usage)-post") == ["pre-Custom-post"]
    assert shell.invoke("@(Get-ReceiveConnector 'Client HubA').Count") == [1]


def test_environmentAndStatus(shell, monkeypatch):
    monkeypatch.setenv("EXMTA_TEST_VALUE", "from the environment")
    assert shell.invoke("Write-Output $env:EXMTA_TEST_VALUE") == ["from the environment"]
    shell.run("Fail-Thing")
    assert shell.invoke("$?") == [False]
    assert shell.invoke("$?") == [True]


def test_hashtablesAndScriptBlocks(shell):
    shell.invoke(
        "Test-Thing -Name @{Add='1.2.3.4','5.6.7.8'; Remove=$null} -Count {FromAddress -eq 'x'}"
    )
    arguments = shell.arguments()
    assert arguments["Name"] == {"Add": ("1.2.3.4", "5.6.7.8"), "Remove": None}
    assert str(arguments["Count"]) == "FromAddress -eq 'x'"


# Credentials.


def test_getCredential():
    shell = Shell(["smtpgateway@contoso.com", SECRET])
    assert shell.run("$mycred = Get-Credential")
    credential = shell.session.variables["mycred"]
    assert credential.UserName == "smtpgateway@contoso.com"
    assert revealPassword(credential) == SECRET == credential.GetNetworkCredential().Password
    assert SECRET not in repr(credential) + str(credential)
    shell.run('$mycred; $mycred | Format-List; $mycred | Format-Table; Write-Output "$mycred"')
    assert SECRET not in shell.output
    assert "System.Security.SecureString" in shell.output


def test_getCredentialWithAUserName():
    shell = Shell([SECRET])
    assert shell.invoke("Get-Credential smtpgateway")[0] == PSCredential("smtpgateway", SECRET)


def test_getCredentialAtTheEndOfInput():
    shell = Shell(["only a user name"])
    assert shell.error("Get-Credential").message == (
        "Cannot read the credential: standard input ended before the user name and the password."
    )


def test_secureStrings(shell):
    value = shell.invoke("ConvertTo-SecureString 'P@ss' -AsPlainText -Force")[0]
    assert isinstance(value, SecureString) and revealPassword(value) == "P@ss"
    assert repr(value) == "System.Security.SecureString"
    with pytest.raises(CmdletError):
        str(value)
    assert "-AsPlainText" in shell.error("ConvertTo-SecureString 'x'").message


def test_secretsAreNeverShown(shell):
    shell.run("Secret-Thing; Secret-Thing | fl; Secret-Thing | ft; Secret-Thing | Select-Object *")
    assert SECRET not in shell.output
    assert shell.output.count("System.Security.SecureString") == 8


# Formatting.


def test_formatList():
    assert formatList([CONNECTORS[0]]) == (
        "Identity       : HubA\\Client HubA\n"
        "Name           : Client HubA\n"
        "Server         : HubA\n"
        "Usage          : Client\n"
        "RemoteIPRanges : {0.0.0.0-255.255.255.255}\n"
        "Enabled        : True"
    )
    assert formatList(CONNECTORS[:2], ["Name", "*IP*"]) == (
        "Name           : Client HubA\nRemoteIPRanges : {0.0.0.0-255.255.255.255}\n\n"
        "Name           : FromInternetGateway\nRemoteIPRanges : {192.168.5.77}"
    )


def test_formatTable():
    assert formatTable(CONNECTORS, ["Name", "Usage", "Enabled"]) == (
        "Name                   Usage  Enabled\n"
        "----                   -----  -------\n"
        "Client HubA            Client True\n"
        "FromInternetGateway    Custom True\n"
        "Receive Connector Name Custom True"
    )
    assert formatTable(
        [{"Queue": "a", "MessageCount": 3}, {"Queue": "bb", "MessageCount": 12}]
    ) == ("Queue MessageCount\n----- ------------\na                3\nbb              12")


def test_formatDefault():
    # Up to four properties: a table; more: a list; text as it is.
    assert formatDefault(["a", 1, None, True]) == "a\n1\nTrue"
    assert formatDefault([{"A": 1}]) == "A\n-\n1"
    assert formatDefault([CONNECTORS[0]]) == formatList([CONNECTORS[0]])

    @dataclass
    class View:
        DefaultDisplayPropertySet = ("Identity", "Enabled")
        Identity: str
        Enabled: bool
        Other: str
        More: str
        EvenMore: str

    assert (
        formatDefault([View("x", False, "o", "m", "e")])
        == "Identity Enabled\n-------- -------\nx        False"
    )


def test_formatTableNarrowsToTheDisplay():
    rows = [{"Identity": "HubA\\Default", "Bindings": "{127.0.0.1:2525}", "Enabled": True}]
    assert formatTable(rows, width=30) == (
        "Identity     Bindings\n"
        "--------     --------\n"
        "HubA\\Default {127.0.0.1:2525}\n"
        "WARNING: 1 columns do not fit into the display and were removed."
    )
    assert formatTable(rows, width=200) == formatTable(rows)


def test_formatCmdlets(shell):
    shell.run("Get-ReceiveConnector | Format-Table Name, Usage")
    assert shell.host.output[-1].splitlines()[:2] == [
        "Name                   Usage",
        "----                   -----",
    ]
    shell.run("Get-ReceiveConnector 'Client HubA' | fl Name")
    assert shell.host.output[-1] == "Name : Client HubA"
    shell.run("Get-ReceiveConnector | ft -Property Name -HideTableHeaders -AutoSize")
    assert shell.host.output[-1] == "Client HubA\nFromInternetGateway\nReceive Connector Name"


# The other built-in cmdlets.


def test_whereObject(shell):
    assert shell.invoke(
        "Get-ReceiveConnector | Where-Object {$_.Usage -eq 'custom' -and $_.Name -like '*Gateway'}"
    ) == [CONNECTORS[1]]
    assert shell.invoke("Get-ReceiveConnector | ? Usage -EQ Client") == [CONNECTORS[0]]
    assert shell.invoke(
        "Get-ReceiveConnector | where {RemoteIPRanges -contains '192.168.1.10'}"
    ) == [CONNECTORS[2]]
    shell.run("$wanted = 'Client HubA'")
    assert shell.invoke("Get-ReceiveConnector | Where-Object {$_.Name -eq $wanted}") == [
        CONNECTORS[0]
    ]
    error = shell.error("Get-ReceiveConnector | Where-Object {$_.Name -frob 1}")
    assert "Unexpected token '-frob'" in error.message


def test_selectSortForEach(shell):
    assert shell.invoke("Get-ReceiveConnector | Select-Object -First 1 -Property Name, Usage") == [
        {"Name": "Client HubA", "Usage": "Client"}
    ]
    assert shell.invoke("Get-ReceiveConnector | Select-Object -Last 1 -ExpandProperty Name") == [
        "Receive Connector Name"
    ]
    assert shell.invoke("Get-ReceiveConnector | Sort-Object Name -Descending | % Name") == [
        "Receive Connector Name",
        "FromInternetGateway",
        "Client HubA",
    ]
    assert shell.invoke("Get-ReceiveConnector | ForEach-Object {$_.Server}") == ["HubA"] * 3
    assert shell.invoke("3, 1, 2 | sort") == [1, 2, 3]
    assert shell.invoke("Write-Output a b | Out-Null") == []


def test_getCommand(shell):
    names = [info.Name for info in shell.invoke("Get-Command *-ReceiveConnector")]
    assert names == ["Get-ReceiveConnector", "New-ReceiveConnector"]
    assert [info.Name for info in shell.invoke("gcm -Verb Add")] == ["Add-ADPermission"]
    assert shell.invoke("Get-Command New-SendConnector -Syntax") == [
        "New-SendConnector [-Name] <Object> [-Usage <Object>] [-AddressSpaces <Object[]>] [-SmartHosts <Object[]>] "
        "[-SmartHostAuthMechanism <Object[]>] [-AuthenticationCredential <Object>] "
        "[-SourceTransportServers <Object[]>] [-DNSRoutingEnabled <Object>] [-WhatIf] [-Confirm] [<CommonParameters>]"
    ]
    assert "is not recognized" in shell.error("Get-Command Get-Nothing").message


def test_getHelp(shell):
    text = str(shell.invoke("Get-Help Get-Credential")[0])
    assert text.startswith(
        "NAME\n    Get-Credential\n\nSYNOPSIS\n    Ask for a user name and a password"
    )
    assert "-UserName" in str(shell.invoke("help Get-Credential -Full")[0])
    assert "Get-Command" in str(shell.invoke("Get-Help")[0])
    assert "could not find Frob" in shell.error("Get-Help Frob").message


# Completion.


def test_completions(shell):
    session = shell.session
    assert completions(session, "", "New-S") == ["New-SendConnector"]
    assert completions(session, "Get-ReceiveConnector X | ", "add-") == ["Add-ADPermission"]
    assert completions(session, "New-SendConnector -Name x ", "-Sm") == [
        "-SmartHosts",
        "-SmartHostAuthMechanism",
    ]
    assert completions(session, "New-SendConnector ", "-wh") == ["-WhatIf"]
    assert completions(session, "$c = ", "Get-Cred") == ["Get-Credential"]
    assert completions(session, 'Test-Thing "a | b" ', "-Forc") == ["-Force"]
    session.variables["mycred"] = None
    assert completions(session, "New-SendConnector -AuthenticationCredential ", "$my") == [
        "$mycred"
    ]
    assert completions(session, "Nothing-Here ", "-x") == []


# Any statement of the language runs or fails with an error; the runtime
# itself never fails.

_TOKENS = st.sampled_from(
    [
        "Write-Output",
        "Format-List",
        "fl",
        "ft",
        "Select-Object",
        "Where-Object",
        "Sort-Object",
        "%",
        "Get-Command",
        "Get-Help",
        "Get-Credential",
        "Read-Host",
        "ConvertTo-SecureString",
        "Test-Thing",
        "Get-ReceiveConnector",
        "Add-ADPermission",
        "Count-Input",
        "Secret-Thing",
        "|",
        ";",
        "-Name",
        "-P",
        "-First",
        "-Property",
        "{",
        "}",
        "$x",
        "$x =",
        "'a'",
        '"b $x"',
        "1",
        "1,2",
        "@{a=1}",
        "(",
        ")",
        "$null",
        "-Confirm:$false",
        "-WhatIf",
        "-AsPlainText",
        "-eq",
        "*",
        "Name",
        "-EQ",
        "-Value",
        "$_.Name",
        "-ExpandProperty",
        "@(",
        "$c.Name",
        "-Force",
        "$true",
        "-User",
        "\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=12))
def test_anyStatementRunsOrFailsCleanly(tokens):
    shell = Shell(["user", "password"])
    try:
        shell.run(" ".join(tokens))
    except ExitRequest:
        pass
    assert "an error in exmta" not in shell.errors


# exmta shell, as an administrator runs it.


def exmtaShell(*arguments, input=None, cwd=ROOT, env=None):
    return subprocess.run(
        [sys.executable, "-m", "exmta.cli", "shell", *arguments],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "org.ini"
    path.write_text("[TransportServer HubA]\n")
    return str(path)


def test_commandReadsGetCredentialFromStandardInput(config):
    result = exmtaShell(
        "-c",
        config,
        "-Command",
        "$c = Get-Credential; Write-Output $c.UserName; $c | Format-List",
        input=f"smtpgateway@contoso.com\n{SECRET}\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "smtpgateway@contoso.com\nUserName : smtpgateway@contoso.com\nPassword : System.Security.SecureString\n"
    )
    assert SECRET not in result.stdout + result.stderr
    assert result.stderr == ""


def test_commandIsTheRestOfTheLine(config):
    result = exmtaShell("-c", config, "-command", "Write-Output", "a;", "Write-Output", "'b c'")
    assert (result.returncode, result.stdout) == (0, "a\nb c\n")


def test_exitStatuses(config):
    result = exmtaShell("-c", config, "-Command", "Get-Frob; Write-Output next")
    assert result.returncode == 1
    assert result.stdout == "next\n"
    assert result.stderr.startswith(
        "Get-Frob : The term 'Get-Frob' is not recognized as the name of a cmdlet"
    )
    assert "Traceback" not in result.stderr
    assert exmtaShell("-c", config, "-Command", "exit 7").returncode == 7
    assert exmtaShell("-c", config, "-Command", "Write-Output 'unterminated").returncode == 1
    usage = exmtaShell("-c", config, "-Bogus")
    assert usage.returncode == 2 and "unknown option -Bogus" in usage.stderr
    assert exmtaShell("-h").stdout.startswith("usage: exmta shell")


def test_outputReadByOneThatStopsReading(config):
    """
    C{exmta shell -Command ... | head -1}: the Shell stops quietly.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exmta.cli",
            "shell",
            "-c",
            config,
            "-Command",
            "Get-Command;" * 100,
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"CommandType")
    process.stdout.close()
    assert process.wait(timeout=60) == 1
    assert process.stderr.read() == b""
    process.stderr.close()


def test_scriptFile(config, tmp_path):
    script = tmp_path / "setup.ps1"
    script.write_text("# set up\nWrite-Output one\nGet-Frob\nWrite-Output two\n")
    result = exmtaShell("-c", config, str(script))
    assert (result.returncode, result.stdout) == (1, "one\ntwo\n")
    assert f"At {script}:3 char:1" in result.stderr
    # A script that does not parse does not run at all.
    script.write_text("Write-Output one\nWrite-Output 'two\n")
    result = exmtaShell("-c", config, "-File", str(script))
    assert (result.returncode, result.stdout) == (1, "")
    assert f"At {script}:2 char:14" in result.stderr
    missing = exmtaShell("-c", config, str(tmp_path / "missing.ps1"))
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_standardInputRunsStatementByStatement(config):
    """
    Without -Command, standard input is the script, and Get-Credential
    reads the lines that follow it.
    """
    script = (
        "$mycred = Get-Credential\n"
        "smtpgateway@contoso.com\n"
        f"{SECRET}\n"
        "Write-Output $mycred.UserName |\n"
        "  ForEach-Object { $_ }\n"
        "Write-Output 'multi\nline'\n"
    )
    result = exmtaShell("-c", config, input=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "smtpgateway@contoso.com\nmulti\nline\n"
    result = exmtaShell("-c", config, input="Write-Output a\nFrob-It\n\nWrite-Output b\n")
    assert (result.returncode, result.stdout) == (1, "a\nb\n")
    assert "At line:2 char:1" in result.stderr


def test_exmtaHelpListsTheShell():
    result = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "--help"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "check-config" in result.stdout and "shell" in result.stdout


def test_arguments():
    assert parseArguments(["-c", "x.ini", "-Com", "a", "-b"]) == {
        "config": "x.ini",
        "command": "a -b",
        "file": None,
        "help": False,
    }
    assert parseArguments(["script.ps1", "-NoProfile"])["file"] == "script.ps1"


def onTerminal(arguments, steps, env):
    """
    Run C{exmta shell ARGUMENTS} on a pseudo-terminal; for each C{(prompt,
    line)} of C{steps}, in order, wait for the prompt then type the line.

    @return: the exit status and everything written to the terminal.
    """
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "exmta.cli", "shell", *arguments],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, **env),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    steps = list(steps)
    try:
        while True:
            readable, _, _ = select.select([controller], [], [], 30)
            assert readable, f"no output from exmta shell; so far: {seen!r}"
            try:
                chunk = os.read(controller, 1024)
            except OSError:  # Linux: the other end is closed
                break
            if not chunk:
                break
            seen += chunk
            if steps and seen.endswith(steps[0][0].encode()):
                os.write(controller, steps.pop(0)[1].encode() + b"\r")
    finally:
        os.close(controller)
    return process.wait(timeout=60), seen.decode(errors="replace")


def test_interactive(config, tmp_path):
    status, output = onTerminal(
        ["-c", config],
        [
            ("[PS] exmta> ", "Write-Output 'hello,"),
            (">> ", "world'"),
            ("[PS] exmta> ", "$c = Get-Credential"),
            ("User: ", "kim"),
            ("Password for user kim: ", SECRET),
            ("[PS] exmta> ", "$c.UserName"),
            # Tab completes a cmdlet's name, then a parameter's (adding no
            # space, as in PowerShell).
            ("[PS] exmta> ", "Write-Out\t completed"),
            ("[PS] exmta> ", "Write-Output -NoEnu\t parameter"),
            ("[PS] exmta> ", "exit 4"),
        ],
        {"HOME": str(tmp_path)},
    )
    assert status == 4, output
    assert "hello,\r\nworld" in output
    assert "\r\nkim\r\n" in output
    assert "\r\ncompleted\r\n" in output and "\r\nparameter\r\n" in output
    assert SECRET not in output
    history = tmp_path / ".exmta_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "$c = Get-Credential" in history.read_text()
