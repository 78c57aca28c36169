"""
The PowerShell that administrators write around the cmdlets: operators,
arrays and hashtables, members and methods, if/foreach/while, functions,
try/catch and -ErrorAction, and the utility cmdlets (Get-Date,
Measure-Object, Group-Object, CSV), run by a L{Session} on a real org.ini.
"""

import datetime
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exmta.config import loadOrganization
from exmta.shell.host import MemoryHost
from exmta.shell.parser import ShellSyntaxError, parse
from exmta.shell.runtime import Session, ShellError, loadCmdlets

loadCmdlets()

ORG = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[ReceiveConnector Default HubA]
Server = HubA
Bindings = 127.0.0.1:2525
RemoteIPRanges = 0.0.0.0-255.255.255.255

[ReceiveConnector Client HubA]
Server = HubA
Bindings = 127.0.0.1:2587
RemoteIPRanges = 0.0.0.0-255.255.255.255
Usage = Client

[ReceiveConnector Default HubB]
Server = HubB
Bindings = 127.0.0.2:2525
RemoteIPRanges = 0.0.0.0-255.255.255.255
"""


class Shell:
    def __init__(self, folder):
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(ORG)
        self.host = MemoryHost()
        self.session = Session(self.path, self.host)

    def __call__(self, text):
        return self.session.invoke(text)

    def one(self, text):
        (value,) = self.session.invoke(text)
        return value

    def value(self, text):
        """
        The value of an expression, as C{$v = text} keeps it.
        """
        self.session.invoke(f"$v = {text}")
        return self.session.variables["v"]

    def run(self, text):
        """
        Run as a script does: errors shown, the next statement runs.
        """
        ok = self.session.run(text, origin="script.ps1")
        return ok, "\n".join(self.host.output), "\n".join(self.host.errors)


@pytest.fixture
def shell(tmp_path):
    os.chdir(tmp_path)
    return Shell(str(tmp_path))


# Operators.


@pytest.mark.parametrize(
    "text, value",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("6 / 2", 3),
        ("7 % 3", 1),
        ("-3 + 5", 2),
        ('"a" + 1', "a1"),
        ('1 + "2"', 3),
        ('"ab" * 2', "abab"),
        ("1, 2 + 3", (1, 2, 3)),
        ("10MB / 1KB", 10240),
        ("1 -eq 1 -and 2 -gt 1", True),
        ("1 -eq 2 -or -not $false", True),
        ("!$true", False),
        ('"Abc" -eq "abc"', True),
        ('"Abc" -ceq "abc"', False),
        ('"HubA" -like "hub*"', True),
        ('"HubA" -notlike "x*"', True),
        ('"mail.fabrikam.com" -match "fabrikam\\.com$"', True),
        ("1, 2, 3 -contains 2", True),
        ("2 -in 1, 2", True),
        ("2 -notin 1, 2", False),
        ("1, 2, 3, 4 -gt 2", (3, 4)),
        ('"a,b;c" -split "[,;]"', ("a", "b", "c")),
        ('"a", "b" -join ";"', "a;b"),
        ('"Hello" -replace "l+", "L"', "HeLo"),
        ("'kim@fabrikam.com' -replace '^(\\w+)@.*$', '$1'", "kim"),
        ('"10 MB (10,485,760 bytes)" / 1MB', 10),
        ('"{0}:{1,4}|{2:N1}" -f "a", 7, 1234.56', "a:   7|1,234.6"),
        ("1..4", (1, 2, 3, 4)),
        ("3..1", (3, 2, 1)),
        ('5 -is [int]', True),
        ('"5" -as [int]', 5),
        ('"x" -as [int]', None),
        ('[int]"42" + 1', 43),
        ('[string]42 + 1', "421"),
        ("[math]::Round(2.567, 1)", 2.6),
        ('[string]::IsNullOrEmpty("")', True),
        ("$null -eq $null", True),
    ],
)
def test_operators(shell, text, value):
    assert shell.value(text) == value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=5), st.lists(st.sampled_from("+-*"), min_size=4, max_size=4))
def test_arithmeticIsPythons(numbers, operators):
    """
    Integer arithmetic with + - * and PowerShell's precedence gives what
    Python gives.
    """
    text = str(numbers[0])
    for number, operator in zip(numbers[1:], operators):
        text += f" {operator} {number}"
    session = Session("org.ini", MemoryHost())
    assert session.invoke(text) == [eval(text)]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="if(){}$x=-eq 1;,\"'[]@.foreach in try catch function%|!+*\n", max_size=40))
def test_everyTextParsesOrFails(text):
    """
    Any text either parses or raises a ShellSyntaxError (never another
    exception).
    """
    try:
        parse(text)
    except ShellSyntaxError:
        pass


# Values: arrays, hashtables, members, methods.


def test_arraysAndIndexing(shell):
    assert shell("$a = 'x', 'y', 'z'; $a[0]; $a[-1]; $a[0, 2]; $a.Count") == ["x", "z", "x", "z", 3]
    assert shell("$e = @(); $e.Count; $e += 'one'; $e.Count; $e[0]") == [0, 1, "one"]
    assert shell("$b = @(5); $b.Count") == [1]
    assert shell("$a = 1, 2; $a[1] = 7; $a") == [1, 7]
    assert shell("$null -eq $a[9]") == [True]


def test_hashtables(shell):
    assert shell(
        '$h = @{Name = "ToInternet"; Size = 10MB}; $h.Size += 1; $h["name"] = "x"; '
        "$h.Name; $h.Size; $h.Count; $h.ContainsKey('SIZE'); $h.Keys -contains 'Name'"
    ) == ["x", 10 * 1048576 + 1, 2, True, True]
    assert shell("$h = @{}; $h.Add('a', 1); $h.a") == [1]


def test_membersAndMethods(shell):
    assert shell('"  Hub A ".Trim().ToUpper(); "a-b".Split("-")[1]; "HubA".Length') == ["HUB A", "b", 4]
    assert shell("(Get-ReceiveConnector).Count") == [3]
    # Member enumeration: a property of every item of an array.
    assert shell("(Get-ReceiveConnector).Name") == ["Default HubA", "Client HubA", "Default HubB"]
    assert shell("(Get-TransportServer HubA).Name.ToLower()") == ["huba"]
    assert shell("(Get-ReceiveConnector 'Client HubA').Identity.ToString()") == ["HubA\\Client HubA"]


def test_stringExpansion(shell):
    shell("$c = Get-ReceiveConnector 'Client HubA'; $n = 3")
    assert shell('"$n connectors, first $($c.Name) on $($c.Server)"') == [
        "3 connectors, first Client HubA on HubA"
    ]
    # A member in a string is text after the variable, as in PowerShell.
    assert shell('"$n.Name"') == ["3.Name"]


def test_dates(shell):
    before = datetime.datetime.now()
    hourAgo, now = shell("(Get-Date).AddHours(-1); Get-Date")
    assert before - datetime.timedelta(hours=1, seconds=5) < hourAgo < now
    assert shell("((Get-Date) - (Get-Date).AddMinutes(-90)).TotalMinutes -gt 89") == [True]
    assert shell('(Get-Date -Date "2026-03-01 10:30").AddDays(-1).ToString("yyyy-MM-dd HH:mm")') == [
        "2026-02-28 10:30"
    ]
    assert shell('Get-Date -Date "2026-03-01" -Format "dddd d MMMM yyyy"') == ["Sunday 1 March 2026"]
    assert shell('([datetime]"2026-01-31").AddMonths(1).Day') == [28]
    assert shell("(New-TimeSpan -Hours 2).TotalMinutes") == [120]


# Statements.


def test_ifElseifElse(shell):
    script = """
    foreach ($n in 1, 5, 10) {
        if ($n -lt 3) { "small $n" }
        elseif ($n -lt 7) { "medium $n" }
        else { "large $n" }
    }
    """
    assert shell(script) == ["small 1", "medium 5", "large 10"]
    # A statement's output is its value: nothing is false.
    assert shell("if (Get-ReceiveConnector -Identity 'Client HubA') { 'found' }") == ["found"]
    assert shell("if (@()) { 'yes' } else { 'no' }") == ["no"]


def test_foreachWhileBreakContinue(shell):
    assert shell("foreach ($s in Get-TransportServer) { $s.Fqdn }") == [
        "huba.fabrikam.com",
        "hubb.fabrikam.com",
    ]
    assert shell("foreach ($i in 1..10) { if ($i -eq 2) { continue }; if ($i -gt 3) { break }; $i }") == [1, 3]
    assert shell("$i = 0; while ($i -lt 3) { $i += 1; $i }") == [1, 2, 3]
    # foreach over $null runs no time; over one object, once.
    assert shell("foreach ($x in $null) { 'ran' }; foreach ($x in 7) { $x }") == [7]


def test_forEachObjectRunsCommands(shell):
    shell("Get-ReceiveConnector | ForEach-Object { Set-ReceiveConnector $_.Identity -MaxMessageSize 25MB }")
    sizes = {c.name: c.maxMessageSize for c in loadOrganization(shell.path).receiveConnectors}
    assert set(sizes.values()) == {25 * 1048576}
    assert shell("Get-TransportServer | % { $PSItem.Name }") == ["HubA", "HubB"]
    assert shell("1..3 | ForEach-Object -Begin { $t = 0 } -Process { $t += $_ } -End { $t }") == [6]
    # return in a ForEach-Object block goes on with the next object.
    assert shell("1..3 | % { if ($_ -eq 2) { return }; $_ }") == [1, 3]


def test_whereObjectBeyondAFilter(shell):
    assert [c.Name for c in shell("Get-ReceiveConnector | Where-Object { $_.Name.StartsWith('Client') }")] == [
        "Client HubA"
    ]
    assert [c.Name for c in shell(
        "Get-ReceiveConnector | ? { (Get-TransportServer $_.Server).Fqdn -like 'hubb*' }"
    )] == ["Default HubB"]


def test_functions(shell):
    shell(
        """
        function Get-Size { param([Parameter(Mandatory=$true)][string]$Name, [int]$Factor = 2, [switch]$Mb)
            $size = [long](Get-ReceiveConnector $Name).MaxMessageSize * $Factor
            if ($Mb) { return $size / 1MB }
            $size
        }
        function Join-All($Separator) { $args -join $Separator }
        function Count-Input { @($input).Count }
        """
    )
    assert shell("Get-Size 'Client HubA' -Mb") == [20]
    assert shell("Get-Size -Name 'Client HubA' -Factor 1 -Mb") == [10]
    assert shell("Join-All - a b c") == ["a-b-c"]
    assert shell("Get-ReceiveConnector | Count-Input") == [3]
    assert "missing mandatory parameters: Name" in pytest.raises(ShellError, shell, "Get-Size").value.message
    # A function's variables are its own; it reads its caller's.
    assert shell("$outer = 'o'; function F { $inner = $outer + '!'; $inner }; F; $null -eq $inner") == ["o!", True]


def test_statementsAsValues(shell):
    assert shell("$names = foreach ($s in Get-TransportServer) { $s.Name }; $names.Count") == [2]
    assert shell("$x = if ($true) { 'a' } else { 'b' }; $x") == ["a"]


# Errors.


def test_tryCatchFinally(shell):
    assert shell("try { throw 'boom' } catch { \"caught $_\" } finally { 'done' }") == ["caught boom", "done"]
    assert shell(
        "try { Get-ReceiveConnector Nope -ErrorAction Stop; 'not here' } "
        "catch { $_.Exception.Message }"
    ) == ["The operation couldn't be performed because object 'Nope' couldn't be found in "
          f"{shell.path}."]
    assert shell("try { Get-Frob } catch [System.Management.Automation.CommandNotFoundException] { 'no such' }") == [
        "no such"
    ]
    assert shell("try { 1 / 0 } catch { $_.Exception.GetType().Name }") == ["RuntimeException"]
    assert shell("try { throw @{Code = 7} } catch { $_.TargetObject.Code }") == [7]


def test_nonTerminatingErrorsGoOn(shell):
    """
    A cmdlet's error is shown and the script goes on, inside try too,
    unless -ErrorAction Stop or $ErrorActionPreference makes it stop.
    """
    ok, output, errors = shell.run(
        "try { Get-ReceiveConnector Nope; 'went on' } catch { 'caught' }\n"
        "Get-ReceiveConnector Nope -ErrorAction SilentlyContinue; \"quiet: $?\"\n"
        "$ErrorActionPreference = 'Stop'\n"
        "try { Get-ReceiveConnector Nope; 'not here' } catch { 'stopped' }\n"
    )
    assert output.splitlines() == ["went on", "quiet: False", "stopped"]
    assert errors.count("couldn't be found") == 1
    assert not ok and shell.session.failed


def test_errorsHavePowerShellsShape(shell):
    ok, output, errors = shell.run(
        "foreach ($i in 1, 0, 2) {\n"
        "    10 / $i\n"
        "}\n"
        "$null.Frob()\n"
        "throw 'the end'\n"
        "'not reached in this statement, but the script goes on'\n"
    )
    assert output.splitlines() == ["10", "5", "not reached in this statement, but the script goes on"]
    assert errors.split("\n\n") == errors.split("\n\n")  # one block per error
    assert errors.splitlines() == [
        "Attempted to divide by zero.",
        "At script.ps1:2 char:5",
        "+     10 / $i",
        "+     ~~~~~~~",
        "You cannot call a method on a null-valued expression.",
        "At script.ps1:4 char:1",
        "+ $null.Frob()",
        "+ ~~~~~~~~~~~~",
        "the end",
        "At script.ps1:5 char:1",
        "+ throw 'the end'",
        "+ ~~~~~~~~~~~~~~~",
    ]


def test_breakOutsideALoopEndsTheScript(shell):
    ok, output, errors = shell.run("'a'\nreturn\n'b'")
    assert output == "a" and ok


# The utility cmdlets.


def test_measureAndGroup(shell):
    measured = shell.one("Get-ReceiveConnector | Measure-Object")
    assert measured.Count == 3 and measured.Sum is None
    measured = shell.one("Get-ReceiveConnector | Measure-Object MaxMessageSize -Sum -Maximum -Average")
    assert (measured.Sum, measured.Maximum, measured.Average) == (3 * 10485760, 10485760, 10485760)
    groups = shell("Get-ReceiveConnector | Group-Object Server")
    assert [(g.Name, g.Count) for g in groups] == [("HubA", 2), ("HubB", 1)]
    assert [g.Name for g in groups[0].Group] == ["Default HubA", "Client HubA"]
    assert shell("(Get-ReceiveConnector | Group-Object { $_.Name.Split(' ')[0] }).Name") == ["Default", "Client"]


def test_selectObject(shell):
    assert shell(
        "Get-ReceiveConnector | Select-Object Name, @{Name='MB'; Expression={$_.MaxMessageSize / 1MB}} -First 1"
    ) == [{"Name": "Default HubA", "MB": 10}]
    assert shell("Get-ReceiveConnector | Sort-Object { $_.Name.Length } | Select-Object -ExpandProperty Name -First 1") == [
        "Client HubA"
    ]


def test_csv(shell, tmp_path):
    shell("Get-ReceiveConnector | Select-Object Name, Server, Bindings | Export-Csv out.csv -NoTypeInformation")
    with open(tmp_path / "out.csv") as handle:
        lines = handle.read().splitlines()
    # Every field quoted; a list written as its type, as PowerShell does.
    assert lines[:2] == ['"Name","Server","Bindings"', '"Default HubA","HubA","System.String[]"']
    rows = shell("Import-Csv out.csv")
    assert [row["Name"] for row in rows] == ["Default HubA", "Client HubA", "Default HubB"]
    assert shell("Get-TransportServer | Select-Object Name | ConvertTo-Csv")[:2] == [
        "#TYPE System.Management.Automation.PSCustomObject",
        '"Name"',
    ]
    shell("Get-TransportServer HubB | Select-Object Name | Export-Csv out.csv -Append")
    assert shell("(Import-Csv out.csv)[-1].Name") == ["HubB"]
    assert shell("Test-Path out.csv; Test-Path nothing.csv") == [True, False]
    assert shell('"a,b", "1,2" | ConvertFrom-Csv | % { $_.b }') == ["2"]


def test_errorVariableAndCallDepth(shell):
    ok, output, errors = shell.run(
        "function Deeper($n) { Deeper ($n + 1) }\n"
        "Deeper 1\n"
        "Get-ReceiveConnector Nope\n"
        "$Error[0].Exception.Message.Contains('Nope'); $Error.Count\n"
    )
    assert output.splitlines() == ["True", "2"]
    assert errors.startswith("The script failed due to call depth overflow.\nAt script.ps1:1 char:23")
