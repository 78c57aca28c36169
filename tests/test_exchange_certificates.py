"""
Exchange Server authentication's policy (L{exmta.auth.certificates}): which
client certificates prove a TransportServer of the organization.  The TLS
handshakes themselves are in tests/e2e/test_server_authentication.py.
"""

import time

import pytest
import trustme
from cryptography import x509
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from exmta.auth import permissions
from exmta.auth.certificates import (
    ExchangeServerCertificate,
    ExchangeServerChecker,
    describe,
    issue,
    makeAuthority,
)
from exmta.config import parseOrganization
from exmta.errors import ConfigError
from exmta.interfaces import IExchangeServerCertificate

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com
"""


@pytest.fixture
def organization(tmp_path):
    return parseOrganization(ORGANIZATION, str(tmp_path / "org.ini"))


def chainOf(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificates(handle.read())


def checkerFor(organization, authority, when=None):
    clock = Clock()
    clock.advance(when if when is not None else time.time())
    return ExchangeServerChecker(organization, authority, clock)


def test_issuedCertificateNamesItsServer(organization, tmp_path):
    authority = makeAuthority(str(tmp_path), "fabrikam.com")
    certificate, _ = issue(authority, organization.transportServers["HubB"], ["mail.fabrikam.com"], str(tmp_path))
    checker = checkerFor(organization, authority[0])
    assert checker.serverFor(chainOf(certificate)) == "HubB"
    credentials = ExchangeServerCertificate(chainOf(certificate))
    verifyObject(IExchangeServerCertificate, credentials)
    assert checker.requestAvatarId(credentials).result == permissions.HUB_TRANSPORT_SERVERS
    facts = describe(certificate)
    assert facts.domains == ("hubb.fabrikam.com", "mail.fabrikam.com")
    assert len(facts.thumbprint) == 40 and not facts.isSelfSigned


def test_refused(organization, tmp_path):
    """
    Another authority's certificate for a server's Fqdn, one of the
    organization's naming no server, an expired one: no login.
    """
    authority = makeAuthority(str(tmp_path), "fabrikam.com")
    checker = checkerFor(organization, authority[0])
    foreign = trustme.CA().issue_cert("huba.fabrikam.com")
    foreignChain = [x509.load_pem_x509_certificate(b.bytes()) for b in foreign.cert_chain_pems]
    with pytest.raises(UnauthorizedLogin, match="not issued by the organization"):
        checker.serverFor(foreignChain)
    stranger = parseOrganization("[TransportServer Edge]\nFqdn = edge.fabrikam.com\n", str(tmp_path / "x.ini"))
    certificate, _ = issue(authority, stranger.transportServers["Edge"], [], str(tmp_path))
    with pytest.raises(UnauthorizedLogin, match="names no TransportServer"):
        checker.serverFor(chainOf(certificate))
    hubA, _ = issue(authority, organization.transportServers["HubA"], [], str(tmp_path))
    later = checkerFor(organization, authority[0], when=time.time() + 6 * 365 * 86400)
    with pytest.raises(UnauthorizedLogin):
        later.serverFor(chainOf(hubA))
    with pytest.raises(UnauthorizedLogin, match="no client certificate"):
        checker.serverFor([])


def test_authorityNeedsTheServersCertificate(tmp_path):
    with pytest.raises(ConfigError, match="TlsCertificateAuthorityPath needs TlsCertificatePath"):
        parseOrganization(
            ORGANIZATION + "TlsCertificateAuthorityPath = ca.pem\n", str(tmp_path / "org.ini")
        )


def test_newAndImportExchangeCertificate(tmp_path):
    """
    New-ExchangeCertificate on one machine, Import-ExchangeCertificate of
    its files on another: the second organization's HubB points at copies
    in its own folder, relative to it; a certificate for another server,
    or from another authority, is refused.
    """
    from exmta.shell.runtime import Session, ShellError, loadCmdlets

    loadCmdlets()
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "org.ini").write_text(ORGANIZATION)
    issued = Session(str(first / "org.ini")).invoke("New-ExchangeCertificate -Server HubB")[0]
    made = first / "ExchangeCertificates"
    assert "TlsCertificatePath = ExchangeCertificates/HubB.pem" in (first / "org.ini").read_text()
    arguments = (
        f"-FileName {made / 'HubB.pem'} -PrivateKeyFileName {made / 'HubB.key'} "
        f"-CertificateAuthorityFileName {made / 'organization-ca.pem'}"
    )
    session = Session(str(second / "org.ini"))
    with pytest.raises(ShellError, match="issued to HubB, not HubA"):
        session.invoke(f"Import-ExchangeCertificate -Server HubA {arguments}")
    imported = session.invoke(f"Import-ExchangeCertificate -Server HubB {arguments}")[0]
    assert imported.Thumbprint == issued.Thumbprint
    [server] = session.invoke("Get-TransportServer HubB")
    assert server.TlsCertificatePath == str(second / "ExchangeCertificates" / "HubB.pem")
    assert server.TlsCertificateAuthorityPath == str(second / "ExchangeCertificates" / "organization-ca.pem")
    assert (second / "ExchangeCertificates" / "HubB.key").stat().st_mode & 0o077 == 0
    other = tmp_path / "other"
    makeAuthority(str(other), "contoso.com")
    with pytest.raises(ShellError, match="not issued by the organization"):
        session.invoke(
            f"Import-ExchangeCertificate -Server HubB -FileName {made / 'HubB.pem'} "
            f"-PrivateKeyFileName {made / 'HubB.key'} "
            f"-CertificateAuthorityFileName {other / 'ExchangeCertificates' / 'organization-ca.pem'}"
        )
