"""
The organization's certificates, for Exchange Server authentication
between its transport servers (L{exmta.auth.certificates}):

  - New-ExchangeCertificate -Server HubA: makes the organization's
    certificate authority in the Shell's folder the first time
    (C{ExchangeCertificates/organization-ca.pem} and C{.key}), issues HubA
    a certificate for its Fqdn (and -DomainName), and points HubA's
    TlsCertificatePath, TlsPrivateKeyPath and TlsCertificateAuthorityPath
    at them.
  - Import-ExchangeCertificate -Server HubB -FileName ... -PrivateKeyFileName
    ... -CertificateAuthorityFileName ...: on another machine, takes the
    files New-ExchangeCertificate made there, checks that the authority
    issued the certificate for HubB's Fqdn, copies them into this folder's
    C{ExchangeCertificates} and points HubB's keys at them.
  - Get-ExchangeCertificate [-Server] [-Thumbprint]: each server's
    certificate, with Exchange's thumbprint (SHA-1) and names.

The paths written into org.ini are relative to its folder (on etcd: each
server's own folder), so the same text serves servers on several machines.
"""

import os
import shutil
import time
from dataclasses import dataclass

from twisted.cred.error import UnauthorizedLogin

from exmta.auth import certificates
from exmta.errors import ConfigError
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf
from exmta.shell.configedit import apply, items, load, matching, notFound


@dataclass(frozen=True)
class ExchangeCertificateView:
    DefaultDisplayPropertySet = ("Thumbprint", "Services", "Subject")

    Identity: str
    Server: str
    Thumbprint: str
    Services: str
    Subject: str
    Issuer: str
    CertificateDomains: tuple
    NotBefore: str
    NotAfter: str
    IsSelfSigned: bool
    CertificateAuthority: str | None
    CertificatePath: str


def _view(server, path):
    facts = certificates.describe(path)
    return ExchangeCertificateView(
        Identity=f"{server.name}\\{facts.thumbprint}",
        Server=server.name,
        Thumbprint=facts.thumbprint,
        Services="SMTP",
        Subject=facts.subject,
        Issuer=facts.issuer,
        CertificateDomains=facts.domains,
        NotBefore=facts.notBefore.isoformat(),
        NotAfter=facts.notAfter.isoformat(),
        IsSelfSigned=facts.isSelfSigned,
        CertificateAuthority=server.tlsCertificateAuthorityPath,
        CertificatePath=path,
    )


def _server(organization, identity, configPath):
    name = identityOf(identity).strip()
    for server in organization.transportServers.values():
        if server.name.lower() == name.lower():
            return server
    raise notFound(name, configPath)


def _pointAt(context, action, server, folder, paths, effect):
    """
    Set C{server}'s three TLS keys to C{paths} (absolute, written relative
    to the organization's folder), C{effect} writing the files just
    before org.ini is.
    """
    certificate, key, authority = paths

    def change(document):
        span = document.section("TransportServer", server.name)
        for name, path in (
            ("TlsCertificatePath", certificate),
            ("TlsPrivateKeyPath", key),
            ("TlsCertificateAuthorityPath", authority),
        ):
            document.set(span, name, os.path.relpath(path, folder))
            span = document.section("TransportServer", server.name)
        return lambda organization: effect()

    apply(context, action, server.name, change)


@cmdlet(
    "New-ExchangeCertificate",
    Parameter("Server", mandatory=True),
    Parameter("DomainName", kind="list"),
    Parameter("Services"),
    supportsWhatIf=True,
)
def newExchangeCertificate(context, Server, DomainName=(), Services="SMTP"):
    if str(Services).strip().upper() != "SMTP":
        raise CmdletError("-Services: exmta's certificates serve SMTP only")
    organization = load(context)
    server = _server(organization, Server, context.configPath)
    folder = organization.folder
    stem = os.path.join(folder, certificates.FOLDER, server.name)
    authority = certificates.authorityPaths(folder)
    names = items(DomainName) if DomainName else []
    issued = []

    def issue():
        made = certificates.makeAuthority(folder, _organizationName(organization))
        issued.append(certificates.issue(made, server, names, folder))

    paths = (stem + ".pem", stem + ".key", authority[0])
    _pointAt(context, "New-ExchangeCertificate", server, folder, paths, issue)
    if issued:
        return _view(server, issued[0][0])
    return None


def _organizationName(organization):
    authoritative = [d.domainName for d in organization.acceptedDomains if d.domainType == "Authoritative"]
    return authoritative[0] if authoritative else "exmta"


@cmdlet(
    "Import-ExchangeCertificate",
    Parameter("Server", mandatory=True),
    Parameter("FileName", mandatory=True),
    Parameter("PrivateKeyFileName", mandatory=True),
    Parameter("CertificateAuthorityFileName", mandatory=True),
    supportsWhatIf=True,
)
def importExchangeCertificate(
    context, Server, FileName, PrivateKeyFileName, CertificateAuthorityFileName
):
    organization = load(context)
    server = _server(organization, Server, context.configPath)
    sources = [os.path.abspath(os.path.expanduser(str(p))) for p in
               (FileName, PrivateKeyFileName, CertificateAuthorityFileName)]
    try:
        chain = certificates.readCertificates(sources[0])
        checker = certificates.ExchangeServerChecker(organization, sources[2], _Clock())
        proven = checker.serverFor(chain)
    except ConfigError as error:
        raise CmdletError(str(error)) from None
    except UnauthorizedLogin as refusal:
        raise CmdletError(f"-FileName: {refusal}") from None
    if proven != server.name:
        raise CmdletError(f"-FileName: the certificate was issued to {proven}, not {server.name}")
    folder = os.path.join(organization.folder, certificates.FOLDER)
    targets = [
        os.path.join(folder, server.name + ".pem"),
        os.path.join(folder, server.name + ".key"),
        os.path.join(folder, certificates.AUTHORITY_NAME + ".pem"),
    ]

    def copy():
        os.makedirs(folder, mode=0o700, exist_ok=True)
        for source, target in zip(sources, targets):
            if os.path.abspath(source) != os.path.abspath(target):
                shutil.copyfile(source, target)
        os.chmod(targets[1], 0o600)

    _pointAt(context, "Import-ExchangeCertificate", server, organization.folder, targets, copy)
    return _view(server, sources[0])


class _Clock:
    """
    The clock an imported certificate's validity is checked at.
    """

    def seconds(self):
        return time.time()


@cmdlet(
    "Get-ExchangeCertificate",
    Parameter("Thumbprint", position=0),
    Parameter("Server"),
)
def getExchangeCertificate(context, Thumbprint=None, Server=None):
    organization = load(context)
    servers = matching(organization.transportServers.values(), Server, "name")
    shown = []
    for server in servers:
        if server.tlsCertificatePath is None or not os.path.exists(server.tlsCertificatePath):
            continue
        try:
            view = _view(server, server.tlsCertificatePath)
        except ConfigError as error:
            raise CmdletError(str(error)) from None
        if Thumbprint is None or view.Thumbprint == str(Thumbprint).strip().upper():
            shown.append(view)
    if Thumbprint is not None and not shown:
        raise notFound(str(Thumbprint), context.configPath)
    return shown
