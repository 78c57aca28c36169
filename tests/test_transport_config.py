"""
[TransportConfig] in org.ini and its cmdlets, Get-/Set-TransportConfig;
Get-ExchangeServer and Get-TransportServer's role and version.
"""

import os

import pytest

from exmta.config import loadOrganization
from exmta.config.model import DEFAULT_DSN_COPIES
from exmta.errors import ConfigError
from exmta.shell.host import MemoryHost
from exmta.shell.runtime import Session, ShellError, loadCmdlets

loadCmdlets()

BASE = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative
"""


def write(folder, text):
    path = os.path.join(folder, "org.ini")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_defaultsAreExchange2010s(tmp_path):
    config = loadOrganization(write(str(tmp_path), BASE)).transportConfig
    assert (config.maxReceiveSize, config.maxSendSize, config.maxRecipientEnvelopeLimit) == (
        10 * 1048576, 10 * 1048576, 5000
    )
    assert config.tlsReceiveDomainSecureList == config.tlsSendDomainSecureList == ()
    assert config.generateCopyOfDSNFor == DEFAULT_DSN_COPIES


def test_read(tmp_path):
    organization = loadOrganization(write(str(tmp_path), BASE + """
[TransportConfig]
MaxReceiveSize = unlimited
MaxSendSize = 25MB
MaxRecipientEnvelopeLimit = unlimited
TLSReceiveDomainSecureList = Contoso.com, *.woodgrovebank.com
ExternalPostmasterAddress = SMTP:Postmaster@Fabrikam.com
GenerateCopyOfDSNFor = 5.4.8, 5.1.1
"""))
    config = organization.transportConfig
    assert (config.maxReceiveSize, config.maxSendSize, config.maxRecipientEnvelopeLimit) == (
        None, 25 * 1048576, None
    )
    assert config.tlsReceiveDomainSecureList == ("contoso.com", "*.woodgrovebank.com")
    assert config.generateCopyOfDSNFor == ("5.4.8", "5.1.1")
    # DSNs come from it when the TransportServer names no address.
    assert organization.postmasterAddressOf("HubA") == "Postmaster@fabrikam.com"


@pytest.mark.parametrize(
    "section, line, key, message",
    [
        ("[TransportConfig]\nMaxSendSize = 3GB\n", 8, "MaxSendSize", "out of range"),
        ("[TransportConfig]\nGenerateCopyOfDSNFor = 5.4\n", 8, "GenerateCopyOfDSNFor", "not an enhanced status code"),
        ("[TransportConfig]\nTLSSendDomainSecureList = not a domain\n", 8, "TLSSendDomainSecureList", "not a valid host name"),
        ("[TransportConfig]\nExternalPostmasterAddress = postmaster\n", 8, "ExternalPostmasterAddress", "not an e-mail address"),
        ("[TransportConfig]\nMaxSize = 1MB\n", 8, "MaxSize", "unknown key"),
        ("[TransportConfig Org]\n", 7, None, "takes no name"),
        ("[TransportConfig]\n\n[TransportConfig]\n", 9, None, "a second [TransportConfig] section (the first is on line 7)"),
    ],
)
def test_errorsNameFileLineAndKey(tmp_path, section, line, key, message):
    path = write(str(tmp_path), BASE + "\n" + section)
    with pytest.raises(ConfigError) as caught:
        loadOrganization(path)
    error = caught.value
    assert (error.line, error.key) == (line, key) and message in error.message, str(error)


@pytest.fixture
def shell(tmp_path):
    path = write(str(tmp_path), BASE)
    session = Session(path, MemoryHost())
    session.path = path
    return session


def test_setTransportConfig(shell):
    shell.invoke(
        "Set-TransportConfig -MaxReceiveSize 25MB -MaxSendSize 20MB "
        "-TLSSendDomainSecureList contoso.com, fabrikam.net -MaxRecipientEnvelopeLimit 1000"
    )
    shell.invoke('Set-TransportConfig -TLSSendDomainSecureList @{Remove="fabrikam.net"; Add="woodgrovebank.com"}')
    with open(shell.path) as handle:
        assert handle.read().endswith(
            "\n[TransportConfig]\nMaxReceiveSize = 25MB\nMaxSendSize = 20MB\n"
            "TLSSendDomainSecureList = contoso.com, woodgrovebank.com\nMaxRecipientEnvelopeLimit = 1000\n"
        )
    [view] = shell.invoke("Get-TransportConfig")
    assert view.MaxReceiveSize == "25 MB (26,214,400 bytes)"
    assert view.TLSSendDomainSecureList == ("contoso.com", "woodgrovebank.com")
    # $null takes a key out: Exchange's default again.
    shell.invoke("Set-TransportConfig -MaxSendSize $null")
    assert shell.invoke("(Get-TransportConfig).MaxSendSize") == ["10 MB (10,485,760 bytes)"]


def test_setTransportConfigRefusesWhatTheServerWould(shell):
    with open(shell.path) as handle:
        before = handle.read()
    with pytest.raises(ShellError) as caught:
        shell.invoke("Set-TransportConfig -MaxRecipientEnvelopeLimit -5")
    assert "[TransportConfig] MaxRecipientEnvelopeLimit: -5 is out of range" in caught.value.message
    assert "A parameter cannot be found" in pytest.raises(
        ShellError, shell.invoke, "Set-TransportConfig -MaxSize 1MB"
    ).value.message
    with open(shell.path) as handle:
        assert handle.read() == before


def test_serversShowRoleAndVersion(shell):
    [server] = shell.invoke("Get-ExchangeServer")
    assert (server.Name, server.ServerRole, server.AdminDisplayVersion, server.IsHubTransportServer) == (
        "HubA", "HubTransport", "Version 14.3 (Build 123.4)", True
    )
    # What scripts use to find their Exchange 2010 servers.
    assert shell.invoke('Get-ExchangeServer | ? {$_.AdminDisplayVersion -like "Version 14*"} | % Fqdn') == [
        "huba.fabrikam.com"
    ]
    [transport] = shell.invoke("Get-TransportServer HubA")
    assert (transport.ServerRole, transport.AdminDisplayVersion) == ("HubTransport", "Version 14.3 (Build 123.4)")
    assert "couldn't be found" in pytest.raises(ShellError, shell.invoke, "Get-ExchangeServer HubZ").value.message
