"""
Tests for L{exmta.config.editor}: edits of org.ini's text that keep every
untouched byte, validation before writing, atomic replacement under a lock,
and concurrent writers from several processes.
"""

import datetime
import multiprocessing
import os
import re
import shutil
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exmta.config import ini, loadOrganization
from exmta.config.editor import Document, editing, formatValue, modify
from exmta.errors import ConfigError

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc", "org.ini")

SMALL = """\
# An organization.
[TransportServer HubA]
Fqdn = huba.fabrikam.com

# The one domain.
[AcceptedDomain fabrikam.com]
DomainType = Authoritative
# trailing comment of the domain

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com
"""


def shipped():
    with open(SHIPPED, encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture
def orgFile(tmp_path):
    """
    A copy of the shipped etc/org.ini in a folder of its own.
    """
    path = tmp_path / "org.ini"
    shutil.copyfile(SHIPPED, path)
    return str(path)


def changedLines(before, after):
    """
    @return: the lines of C{before} and C{after} that differ, aligned from
        both ends (for edits that replace, add or remove one stretch).
    """
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return old[head : len(old) - tail], new[head : len(new) - tail]


# The document: lines kept byte for byte


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[A x]\n",
        "[A x]\nk = v",
        "[A x]\r\nk = v\r\n\r\n# c\r\n",
        "\ufeff# bom\n[A x]\nk=v\n",
        "[A x]\rk = v\r",
        "  indented = keys stay\n[A]\n\tk\t=\tv  \n",
    ],
)
def test_unchangedDocumentIsTheSameText(text):
    assert Document(text).text == text


def test_shippedOrganizationReadsBackByteForByte():
    text = shipped()
    document = Document(text)
    assert document.text == text
    kinds = [(s.kind, s.name) for s in document.sections()]
    assert kinds == [(s.kind, s.name) for s in ini.parse(text, SHIPPED)]


def test_sectionsAndTheirKeys():
    document = Document(SMALL)
    domain = document.section("acceptedDOMAIN", "FABRIKAM.com")
    assert (domain.kind, domain.name) == ("AcceptedDomain", "fabrikam.com")
    assert domain.get("domaintype") == "Authoritative"
    assert domain.get("DomainName") is None
    # The comment directly above a header belongs to its section.
    assert document.text.splitlines()[domain.start] == "# The one domain."
    assert [s.name for s in document.sections("Mailbox")] == ["Kim"]


def test_setReplacesOnlyTheValueOnTheKeysLine():
    text = shipped()
    document = Document(text)
    document.set(document.section("ReceiveConnector", "AnonymousRelay"), "bindings", "127.0.0.4:2626")
    assert changedLines(text, document.text) == (
        ["Bindings = 127.0.0.4:2525\n"],
        ["Bindings = 127.0.0.4:2626\n"],
    )


def test_setKeepsTheKeysSpellingAndSpacing():
    document = Document("[A x]\n  Key\t=  old\n")
    document.set(document.section("A", "x"), "KEY", "new")
    assert document.text == "[A x]\n  Key\t=  new\n"


def test_newKeyGoesAfterTheSectionsLastKey():
    document = Document(SMALL)
    document.set(document.section("AcceptedDomain", "fabrikam.com"), "DomainName", "fabrikam.com")
    assert "DomainType = Authoritative\nDomainName = fabrikam.com\n# trailing comment" in document.text


def test_newKeyInASectionWithoutKeysGoesAfterItsHeader():
    document = Document("[A x]\n# about x\n\n[B y]\n")
    document.set(document.section("A", "x"), "K", "v")
    assert document.text == "[A x]\nK = v\n# about x\n\n[B y]\n"


def test_newKeyAtTheEndOfAFileWithoutFinalLineEnd():
    document = Document("[A x]\r\nk = v")
    document.set(document.section("A", "x"), "j", "w")
    assert document.text == "[A x]\r\nk = v\r\nj = w\r\n"


def test_removeKey():
    document = Document(SMALL)
    span = document.section("AcceptedDomain", "fabrikam.com")
    assert document.remove(span, "DomainType")
    assert "DomainType" not in document.text
    assert not document.remove(document.section("AcceptedDomain", "fabrikam.com"), "DomainType")


def test_setNoneRemovesTheKey():
    document = Document(SMALL)
    document.set(document.section("Mailbox", "Kim"), "PrimarySmtpAddress", None)
    assert "PrimarySmtpAddress" not in document.text


def test_addSectionAfterTheLastOfItsKind():
    text = shipped()
    document = Document(text)
    document.addSection("Mailbox", "Dan Jump", [("PrimarySmtpAddress", "dan@fabrikam.com")])
    # After the last mailbox, separated by as many blank lines as the
    # mailboxes are from what follows.
    anchor = "UserPrincipalName = kim@fabrikam.com\n\n\n"
    assert text.count(anchor) == 1
    added = "[Mailbox Dan Jump]\nPrimarySmtpAddress = dan@fabrikam.com\n\n\n"
    assert document.text == text.replace(anchor, anchor + added)


def test_addSectionOfANewKindGoesAtTheEnd():
    document = Document(SMALL)
    document.addSection("SendConnector", "Out", [("AddressSpaces", ("*", "contoso.com;10")), ("Enabled", False)])
    assert document.text == SMALL + "\n[SendConnector Out]\nAddressSpaces = *, contoso.com;10\nEnabled = $false\n"


def test_addSectionToAFileWithoutFinalLineEnd():
    document = Document("[A x]\nk = v")
    document.addSection("A", "y", [("k", "w")])
    assert document.text == "[A x]\nk = v\n\n[A y]\nk = w\n"


def test_addSectionBeforeANeighbourWithoutBlankLines():
    document = Document("[A x]\nk = v\n# about B\n[B y]\n")
    document.addSection("A", "z", [("k", "w")])
    assert document.text == "[A x]\nk = v\n\n[A z]\nk = w\n\n# about B\n[B y]\n"


def test_addSectionToAnEmptyFile():
    document = Document("")
    document.addSection("ADPermission", "", [("User", "x"), ("Deny", None)])
    assert document.text == "[ADPermission]\nUser = x\n"


def test_addSectionKeepsCRLF():
    document = Document("[A x]\r\nk = v\r\n")
    document.addSection("A", "y", [("k", "w")])
    assert document.text == "[A x]\r\nk = v\r\n\r\n[A y]\r\nk = w\r\n"


def test_removeSectionTakesTheCommentBlockAboveIt():
    document = Document(SMALL)
    document.removeSection(document.section("AcceptedDomain", "fabrikam.com"))
    assert document.text == (
        "# An organization.\n[TransportServer HubA]\nFqdn = huba.fabrikam.com\n\n"
        "[Mailbox Kim]\nPrimarySmtpAddress = kim@fabrikam.com\n"
    )


def test_removingTheLastSectionTakesTheBlankLinesBeforeIt():
    document = Document(SMALL)
    document.removeSection(document.section("Mailbox", "Kim"))
    assert document.text == SMALL.split("\n[Mailbox Kim]")[0].rstrip("\n") + "\n"


def test_removeThenAddGivesTheShippedSectionBack():
    """
    Removing the shipped send connector and adding one with the same keys
    gives an organization that reads the same.
    """
    text = shipped()
    document = Document(text)
    span = document.section("SendConnector", "ToInternetGateway")
    keys = [(key, value) for key, value, _ in span.keys]
    document.removeSection(span)
    assert "[SendConnector" not in document.text
    assert document.text.startswith(text.split("[SendConnector")[0].rstrip("\n"))
    document.addSection("SendConnector", "ToInternetGateway", keys)
    before = [(s.kind, s.name, [(e.key, e.value) for e in s.entries]) for s in ini.parse(text, "x")]
    after = [(s.kind, s.name, [(e.key, e.value) for e in s.entries]) for s in ini.parse(document.text, "x")]
    assert before == after


def test_rename():
    document = Document(SMALL)
    document.rename(document.section("Mailbox", "Kim"), "Kim Akers")
    assert "[Mailbox Kim Akers]\n" in document.text
    assert document.section("Mailbox", "kim akers") is not None


@pytest.mark.parametrize(
    "value, text",
    [
        (True, "$true"),
        (False, "$false"),
        (25, "25"),
        (2.0, "2"),
        ("10MB", "10MB"),
        (("Tls", "BasicAuth"), "Tls, BasicAuth"),
        (["127.0.0.1:25"], "127.0.0.1:25"),
        (datetime.timedelta(minutes=5), "00:05:00"),
        (datetime.timedelta(days=2, seconds=1), "2.00:00:01"),
        ("  spaced  ", "spaced"),
    ],
)
def test_formatValue(value, text):
    assert formatValue(value) == text


@pytest.mark.parametrize("value", ["a\nb", "a\rb", ("ok", "x\n[SendConnector evil]"), "a\x00b", "a\u2028b"])
def test_valuesCannotStartANewLine(value):
    with pytest.raises(ValueError, match="line break"):
        formatValue(value)


@pytest.mark.parametrize("name", ["x]", "[x", "x\ny"])
def test_namesCannotBreakTheHeader(name):
    with pytest.raises(ValueError):
        Document("").addSection("A", name, [])


@pytest.mark.parametrize("key", ["two words", "k=v", "", "[x]", "a\nb"])
def test_keysMustBeNames(key):
    document = Document("[A x]\n")
    with pytest.raises(ValueError):
        document.set(document.section("A", "x"), key, "v")


# Property: an edit of one section leaves every other section as it was.

_names = st.text("abcdefgh", min_size=1, max_size=5)
_comments = st.one_of(st.just(""), st.builds(lambda t: "# " + t, st.text("abc xyz=[]", max_size=10)))
_values = st.text("abcxyz ,;$", max_size=8)


@st.composite
def documents(draw):
    count = draw(st.integers(1, 5))
    names = draw(st.lists(_names, min_size=count, max_size=count, unique=True))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ""
    for name in names:
        keys = draw(st.lists(_names, max_size=4, unique_by=str.lower))
        body = [f"{key} = {draw(_values)}" for key in keys]
        for comment in draw(st.lists(_comments, max_size=4)):
            body.insert(draw(st.integers(0, len(body))), comment)
        text += "".join(line + ending for line in [f"[K {name}]"] + body)
    return text, names


def _parsed(text, leaveOut=None):
    return [
        (s.kind, s.name, [(e.key, e.value) for e in s.entries])
        for s in ini.parse(text, "org.ini")
        if s.name != leaveOut
    ]


@given(documents(), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_editingOneSectionKeepsTheOthers(document, data):
    text, names = document
    target = data.draw(st.sampled_from(names))
    key = data.draw(_names)
    value = data.draw(st.text("abc ,$", max_size=6))
    edited = Document(text)
    assert edited.text == text
    edited.set(edited.section("K", target), key, value)
    after = ini.parse(edited.text, "org.ini")
    (section,) = [s for s in after if s.name == target]
    assert section.get(key).value == value.strip()
    assert _parsed(edited.text, target) == _parsed(text, target)

    removed = Document(text)
    removed.removeSection(removed.section("K", target))
    assert _parsed(removed.text) == _parsed(text, target)


# Writing the file


def test_modifyWritesAndTheServerReadsIt(orgFile):
    def change(document):
        document.set(document.section("ReceiveConnector", "AnonymousRelay"), "MaxMessageSize", "20MB")

    diff, organization = modify(orgFile, change)
    assert "-MaxMessageSize" not in diff and "+MaxMessageSize = 20MB" in diff
    relay = [c for c in loadOrganization(orgFile).receiveConnectors if c.name == "AnonymousRelay"][0]
    assert relay.maxMessageSize == 20 * 1024**2
    assert organization.receiveConnectors == loadOrganization(orgFile).receiveConnectors


def test_setAndSetBackIsByteForByte(orgFile):
    with open(orgFile, "rb") as handle:
        original = handle.read()

    def setTo(value):
        def change(document):
            document.set(document.section("TransportServer", "HubA"), "MessageRetryInterval", value)

        return change

    modify(orgFile, setTo("00:02:00"))
    with open(orgFile, "rb") as handle:
        assert handle.read() != original
    modify(orgFile, setTo("00:01:00"))
    with open(orgFile, "rb") as handle:
        assert handle.read() == original


def test_addAndRemoveIsByteForByte(orgFile):
    with open(orgFile, "rb") as handle:
        original = handle.read()
    modify(orgFile, lambda d: d.addSection("AcceptedDomain", "contoso.com", [("DomainType", "ExternalRelay")]))
    assert "contoso.com" in [a.domainName for a in loadOrganization(orgFile).acceptedDomains]
    modify(orgFile, lambda d: d.removeSection(d.section("AcceptedDomain", "contoso.com")))
    with open(orgFile, "rb") as handle:
        assert handle.read() == original


def test_invalidChangeIsRefusedAndTheFileUntouched(orgFile):
    before = os.stat(orgFile)
    with open(orgFile, "rb") as handle:
        original = handle.read()

    def change(document):
        document.set(document.section("ReceiveConnector", "Default HubA"), "AuthMechanism", "BasicAuthRequireTLS")

    with pytest.raises(ConfigError) as caught:
        modify(orgFile, change)
    assert caught.value.key == "AuthMechanism"
    assert caught.value.section == "ReceiveConnector Default HubA"
    assert "BasicAuthRequireTLS requires BasicAuth and Tls" in caught.value.message
    with open(orgFile, "rb") as handle:
        assert handle.read() == original
    after = os.stat(orgFile)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(os.listdir(os.path.dirname(orgFile))) == ["org.ini", "org.ini.lock"]


def test_whatIfGivesTheDiffAndWritesNothing(orgFile):
    with open(orgFile, "rb") as handle:
        original = handle.read()

    def change(document):
        document.set(document.section("SendConnector", "ToInternetGateway"), "Port", 587)

    diff, organization = modify(orgFile, change, whatIf=True)
    assert diff.startswith(f"--- {orgFile}\n+++ {orgFile}\n@@ ")
    assert "\n-Port = 25\n+Port = 587\n" in diff
    assert organization.sendConnector("ToInternetGateway").port == 587
    with open(orgFile, "rb") as handle:
        assert handle.read() == original


def test_writeKeepsModeAndByteOrderMark(tmp_path):
    path = tmp_path / "org.ini"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.replace("\n", "\r\n").encode())
    os.chmod(path, 0o640)
    modify(str(path), lambda d: d.set(d.section("Mailbox", "Kim"), "UserPrincipalName", "kim@fabrikam.com"))
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf# An organization.\r\n")
    assert data.endswith(b"PrimarySmtpAddress = kim@fabrikam.com\r\nUserPrincipalName = kim@fabrikam.com\r\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert loadOrganization(str(path)).mailboxes[0].userPrincipalName == "kim@fabrikam.com"


def test_writeThroughASymlinkReplacesItsTarget(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "org.ini"
    target.write_text(SMALL)
    link = tmp_path / "org.ini"
    link.symlink_to(target)
    modify(str(link), lambda d: d.set(d.section("Mailbox", "Kim"), "EmailAddresses", ("k@fabrikam.com",)))
    assert link.is_symlink()
    assert "EmailAddresses = k@fabrikam.com" in target.read_text()


def test_unreadableFileIsAConfigError(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        with editing(str(tmp_path / "missing.ini")):
            pass
    path = tmp_path / "org.ini"
    path.write_bytes(b"[A \xff]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        with editing(str(path)):
            pass


def test_editHoldsTheLockUntilItIsWritten(orgFile):
    """
    A second editor waits for the first; it then reads the first's change,
    so neither is lost.
    """
    import fcntl

    with editing(orgFile) as edit:
        edit.document.set(edit.document.section("Mailbox", "Administrator"), "EmailAddresses", "admin@fabrikam.com")
        descriptor = os.open(orgFile + ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)
        edit.write()
    with editing(orgFile) as edit:
        assert edit.document.section("Mailbox", "Administrator").get("EmailAddresses") == "admin@fabrikam.com"


# Concurrent writers in separate processes


def _addDomains(path, worker, count, start):
    start.wait()
    for number in range(count):
        name = f"w{worker}n{number}.example"

        def change(document):
            document.addSection("AcceptedDomain", name, [("DomainType", "ExternalRelay")])
            # Everybody also rewrites one shared key: last writer wins, and
            # no writer's section may disappear because of it.
            document.set(document.section("TransportServer", "HubA"), "TransientFailureRetryCount", worker % 15)

        modify(path, change)


def test_concurrentEditorsLoseNothing(orgFile):
    workers, count = 6, 8
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    processes = [spawn.Process(target=_addDomains, args=(orgFile, w, count, start)) for w in range(workers)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    organization = loadOrganization(orgFile)
    names = {a.domainName for a in organization.acceptedDomains}
    assert names == {"fabrikam.com"} | {f"w{w}n{n}.example" for w in range(workers) for n in range(count)}
    assert organization.transportServers["HubA"].transientFailureRetryCount in range(workers)
    # Comments and every other section came through as they were.
    text = open(orgFile).read()
    assert text.count("TransientFailureRetryCount = ") == 1
    text = re.sub(r"TransientFailureRetryCount = \d+", "TransientFailureRetryCount = 6", text)
    assert text.startswith(shipped().split("[AcceptedDomain")[0])
    assert text.endswith(shipped().split("[Mailbox Administrator]")[1])
    leftovers = [n for n in os.listdir(os.path.dirname(orgFile)) if n not in ("org.ini", "org.ini.lock")]
    assert leftovers == []


def test_moveBeforeTakesTheCommentsAlong():
    document = Document("[A a]\nk = 1\n\n# about b\n[A b]\nk = 2\n")
    document.moveBefore(document.section("A", "b"), document.section("A", "a"))
    assert document.text == "# about b\n[A b]\nk = 2\n\n[A a]\nk = 1\n"


def test_moveBeforeFromTheMiddle():
    document = Document(SMALL + "\n[AcceptedDomain contoso.com]\n")
    document.moveBefore(document.section("AcceptedDomain", "contoso.com"),
                        document.section("AcceptedDomain", "fabrikam.com"))
    assert document.text == SMALL.replace(
        "# The one domain.", "[AcceptedDomain contoso.com]\n\n# The one domain.")
