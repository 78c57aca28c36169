"""
The connector parameter table (docs/connector-parameters.rst, from
L{exmta.shell.connectorparameters}) against the cmdlets: the page is
current, each cmdlet takes every parameter the table names and no other,
each takes its default, and each refuses a bad value (with the reason, for
what exmta does not support).
"""

import importlib.util
import os

import pytest

from exmta.config.organization import RECEIVE_CONNECTOR_KEYS, SEND_CONNECTOR_KEYS
from exmta.shell.cmdlet import CMDLETS, CmdletError
from exmta.shell.configedit import kindOf
from exmta.shell.connectorparameters import CMDLETS as TABLES, rows
from tests.test_config_cmdlets import Shell

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPOSITORY, "docs")

# The common parameters the Shell's runtime takes for every cmdlet.
COMMON = {"confirm", "whatif"}

# A value each kind of key refuses.
BAD_BY_KIND = {
    "bool": "maybe", "number": "-7", "size": "12 parsecs", "timespan": "soon", "list": "@@@",
}
# Text keys, and choices, with a value their rules refuse; None: any text is valid.
BAD_TEXT = {
    "Banner": "hello", "Fqdn": "not a host!", "DefaultDomain": "bad domain!",
    "LinkedReceiveConnector": "Nowhere", "Comment": None, "AuthenticationCredential": "no such",
    "SourceIPAddress": "127.0.0.300", "TlsDomain": "-bad-", "ProtocolLoggingLevel": "Loud",
    "Usage": "Sometimes", "SizeEnabled": "Sometimes", "MessageRateSource": "Moon",
    "TlsAuthLevel": "Trust", "Port": "70000", "AuthMechanism": "Magic",
    "PermissionGroups": "Friends", "SmartHostAuthMechanism": "Magic", "ErrorPolicies": "Often",
    "CredentialCheckers": "no such plugin!",
}


def generator():
    spec = importlib.util.spec_from_file_location(
        "generate_parameters", os.path.join(DOCS, "generate_parameters.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pageIsCurrent():
    with open(os.path.join(DOCS, "connector-parameters.rst"), encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == generator().render(), (
        "docs/connector-parameters.rst differs from the code; regenerate it with: "
        "python docs/generate_parameters.py"
    )


@pytest.mark.parametrize("cmdlet", list(TABLES))
def test_cmdletTakesEveryParameterOfTheTableAndNoOther(cmdlet):
    taken = {parameter.name.lower() for parameter in CMDLETS[cmdlet.lower()].parameters}
    listed = {name.lower() for name, *_ in rows(cmdlet)}
    assert listed - COMMON <= taken, sorted(listed - COMMON - taken)
    assert taken <= listed, sorted(taken - listed)
    assert CMDLETS[cmdlet.lower()].supportsWhatIf


def keyRows(cmdlet, schema):
    return [(name, exmta, status) for name, _, exmta, status in rows(cmdlet) if name in schema]


@pytest.fixture
def shell(tmp_path):
    shell = Shell(str(tmp_path))
    shell("New-SendConnector", Name="Out", AddressSpaces="*")
    return shell


def badValue(schema, key, status):
    if status.startswith("not supported on exmta"):
        return "something else"
    if key in BAD_TEXT:
        return BAD_TEXT[key]
    return BAD_BY_KIND.get(kindOf(schema, key))


CASES = [
    (cmdlet, identity, schema, name, exmta, status)
    for cmdlet, identity, schema in (
        ("Set-ReceiveConnector", "Default HubA", RECEIVE_CONNECTOR_KEYS),
        ("Set-SendConnector", "Out", SEND_CONNECTOR_KEYS),
    )
    for name, exmta, status in keyRows(cmdlet, schema)
]


@pytest.mark.parametrize("cmdlet, identity, schema, name, exmta, status", CASES,
                         ids=[f"{case[0]} -{case[3]}" for case in CASES])
def test_eachParameterIsValidated(shell, cmdlet, identity, schema, name, exmta, status):
    bad = badValue(schema, name, status)
    if bad is None:
        pytest.skip(f"any text is a valid {name}")
    before = shell.text()
    with pytest.raises(CmdletError) as refused:
        shell(cmdlet, Identity=identity, **{name: bad})
    message = str(refused.value)
    assert name in message or name.lower() in message.lower(), message
    if status.startswith("not supported on exmta"):
        assert "not supported on exmta" in message, message
    assert shell.text() == before


@pytest.mark.parametrize("cmdlet, identity, schema, name, exmta, status", CASES,
                         ids=[f"{case[0]} -{case[3]}" for case in CASES])
def test_eachParameterTakesItsDefault(shell, cmdlet, identity, schema, name, exmta, status):
    if exmta in ("by Usage", "the server's FQDN", "the local server", "required", "—"):
        pytest.skip(f"{name}'s default is a rule, not a value")
    value = None if exmta == "$null" else exmta
    shell(cmdlet, Identity=identity, **{name: value})
    shell.organization()


def test_templateInstanceIsRefusedWithTheReason(shell):
    with pytest.raises(CmdletError, match="TemplateInstance: not supported on exmta"):
        shell("New-SendConnector", Name="Other", AddressSpaces="*", TemplateInstance=object())


def test_forceIsAccepted(shell):
    shell("Set-SendConnector", Identity="Out", Force=True, Port=587)
    assert shell.organization().sendConnector("Out").port == 587
