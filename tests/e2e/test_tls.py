"""
STARTTLS on the receive side of C{twistd exmta}, seen by clients and
scanners no one here wrote: C{openssl s_client}, Python's C{ssl}, C{sslscan}
and C{testssl} (Debian's testssl.sh).

  - Clients that offer ALPN (openssl C{-alpn smtp}; Go's and Android's
    clients offer C{h2} and C{http/1.1}) complete STARTTLS; no protocol is
    selected.
  - TLS 1.2 is AEAD only: a client that offers nothing but CBC suites is
    refused.
  - The scan: no protocol below TLS 1.2, no CBC, static-RSA or other weak
    suite, forward secrecy on every suite, no client-initiated
    renegotiation; with an RSA certificate (where static RSA key exchange
    would show) and with the ECDSA one a server makes for itself.

Each runs against a server receiving in its own process and one whose
sessions run in receive workers (C{--workers 2}), which build their own
TLS contexts.
"""

import json
import os
import shutil
import ssl
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest
import trustme

from tests.e2e.conftest import RunningOrganization
from tests.e2e.harness import RawClient, ServerProcess, freePort, writeOrganization
from exmta.tls import INTERMEDIATE_CIPHERS

SCAN_TIMEOUT = 120

# Every CBC suite OpenSSL has for TLS 1.2 with ECDHE, DHE or RSA key exchange.
CBC_ONLY = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:" \
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:" \
    "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:DHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:" \
    "AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256"

# A transport server with its own RSA certificate.
RSA_ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
TlsCertificatePath = {certificate}
TlsPrivateKeyPath = {key}

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls
PermissionGroups = AnonymousUsers
"""


@pytest.fixture(scope="module", params=[0, 2], ids=["one process", "two receive workers"])
def organization(tmp_path_factory, request):
    running = RunningOrganization(str(tmp_path_factory.mktemp("org")), workers=request.param)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def rsaServer(tmp_path_factory):
    """
    (port, server process) of a transport server whose certificate has an
    RSA key.
    """
    folder = str(tmp_path_factory.mktemp("rsa"))
    issued = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "huba.fabrikam.com", key_type=trustme.KeyType.RSA
    )
    certificate, key = os.path.join(folder, "server.pem"), os.path.join(folder, "server.key")
    for blob in issued.cert_chain_pems:
        blob.write_to_path(certificate, append=True)
    issued.private_key_pem.write_to_path(key)
    os.chmod(key, 0o600)
    port = freePort()
    config = writeOrganization(
        folder, RSA_ORGANIZATION.format(certificate=certificate, key=key, port=port)
    )
    server = ServerProcess(config, sockets=1)
    yield port, server
    server.stop()


def starttls(port, context):
    """
    EHLO, STARTTLS and a handshake with C{context} on 127.0.0.1:C{port}.

    @return: the L{RawClient}, inside TLS.
    @raise ssl.SSLError: when the handshake fails.
    """
    raw = RawClient("127.0.0.1", port)
    assert raw.reply()[0] == 220
    assert raw.command("EHLO client.contoso.com")[0] == 250
    code, lines = raw.command("STARTTLS")
    assert code == 220, lines
    raw.sock = context.wrap_socket(raw.sock, server_hostname="huba.fabrikam.com")
    return raw


def anyCertificate():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# ALPN


def test_opensslClientOfferingALPNCompletesSTARTTLS(organization):
    """
    C{openssl s_client -starttls smtp -alpn smtp} got a fatal internal_error
    alert (80) from Twisted's ALPN callback; now the session goes on
    without ALPN.
    """
    result = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         f"127.0.0.1:{organization.ports['default']}", "-alpn", "smtp", "-brief", "-ign_eof"],
        input=b"EHLO client.contoso.com\r\nQUIT\r\n", capture_output=True, timeout=SCAN_TIMEOUT,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    assert "CONNECTION ESTABLISHED" in output and "alert" not in output, output
    assert "250-huba.fabrikam.com" in output and "221 2.0.0" in output, output


@pytest.mark.parametrize(
    "offered", [["smtp"], ["h2", "http/1.1"]], ids=["smtp", "like Go and Android"]
)
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLS 1.2", "TLS 1.3"]
)
def test_pythonClientOfferingALPNCompletesSTARTTLS(organization, offered, version):
    context = anyCertificate()
    context.set_alpn_protocols(offered)
    context.minimum_version = context.maximum_version = version
    raw = starttls(organization.ports["default"], context)
    try:
        assert raw.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                      ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert raw.sock.selected_alpn_protocol() is None
        code, lines = raw.command("EHLO client.contoso.com")
        assert code == 250 and "STARTTLS" not in lines, lines
    finally:
        raw.close()


# Cipher suites


def test_clientOfferingOnlyCBCSuitesIsRefused(organization):
    """
    TLS 1.2 offers AEAD suites only: a client that knows nothing else
    cannot complete the handshake, and one that offers an AEAD suite can.
    """
    cbc = anyCertificate()
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers(CBC_ONLY)
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|handshake failure"):
        starttls(organization.ports["default"], cbc)

    aead = anyCertificate()
    aead.maximum_version = ssl.TLSVersion.TLSv1_2
    aead.set_ciphers(CBC_ONLY + ":ECDHE-ECDSA-AES128-GCM-SHA256")
    raw = starttls(organization.ports["default"], aead)
    try:
        assert raw.sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    finally:
        raw.close()


# The scan


def sslscan(port):
    """
    C{sslscan --starttls-smtp} of 127.0.0.1:C{port}.

    @return: its XML report's root element.
    """
    if shutil.which("sslscan") is None:
        raise AssertionError("Debian's sslscan package is not installed: see the test command in README.rst")
    result = subprocess.run(
        ["sslscan", "--no-colour", "--xml=-", "--starttls-smtp", f"127.0.0.1:{port}"],
        capture_output=True, timeout=SCAN_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ElementTree.fromstring(result.stdout[result.stdout.index(b"<?xml"):])


def assertScanPasses(report):
    enabled = {
        f"{p.get('type')}{p.get('version')}" for p in report.iter("protocol") if p.get("enabled") == "1"
    }
    assert enabled == {"tls1.2", "tls1.3"}, enabled
    ciphers = [(c.get("sslversion"), c.get("cipher"), c) for c in report.iter("cipher")]
    assert ciphers, ElementTree.tostring(report)
    tls12 = {name for version, name, _ in ciphers if version == "TLSv1.2"}
    assert tls12 and tls12 <= set(INTERMEDIATE_CIPHERS.split(":")), tls12
    for version, name, cipher in ciphers:
        assert version in ("TLSv1.2", "TLSv1.3"), name
        # AEAD: AES-GCM or ChaCha20-Poly1305, never CBC with an HMAC.
        assert "GCM" in name.upper() or "POLY1305" in name.upper(), name
        assert cipher.get("strength") in ("strong", "acceptable"), ElementTree.tostring(cipher)
        assert int(cipher.get("bits")) >= 128, name
        # Forward secrecy: an ephemeral (EC)DH key on every suite.
        assert cipher.get("curve") or cipher.get("dhebits"), ElementTree.tostring(cipher)
    for renegotiation in report.iter("renegotiation"):
        assert renegotiation.get("supported") == "0", ElementTree.tostring(renegotiation)


def test_sslscanWithTheServersOwnECDSACertificate(organization):
    assertScanPasses(sslscan(organization.ports["default"]))


def test_sslscanWithAnRSACertificate(rsaServer):
    """
    With an RSA key static RSA key exchange (no forward secrecy) and
    ECDHE-RSA CBC suites would be possible: none is offered.
    """
    port, _ = rsaServer
    report = sslscan(port)
    assertScanPasses(report)
    assert {c.get("cipher") for c in report.iter("cipher") if c.get("sslversion") == "TLSv1.2"} == {
        "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
    }


def test_testsslFindsNoClientInitiatedRenegotiation(rsaServer, tmp_path):
    """
    C{testssl -R} (its renegotiation checks only; C{--nodns none} keeps it
    on loopback).
    """
    if shutil.which("testssl") is None:
        raise AssertionError("Debian's testssl.sh package is not installed: see the test command in README.rst")
    port, _ = rsaServer
    findings = tmp_path / "testssl.json"
    result = subprocess.run(
        ["testssl", "--quiet", "--color", "0", "--nodns", "none", "--warnings", "off",
         "--jsonfile", str(findings), "-t", "smtp", "-R", f"127.0.0.1:{port}"],
        capture_output=True, timeout=SCAN_TIMEOUT,
    )
    report = {entry["id"]: entry for entry in json.loads(findings.read_text())}
    assert "secure_client_renego" in report, result.stdout.decode(errors="replace")
    assert report["secure_client_renego"]["finding"] == "not vulnerable", report
    assert report["secure_client_renego"]["severity"] == "OK", report
