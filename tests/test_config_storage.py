"""
Where org.ini lives: the etcd URL's syntax (L{EtcdLocation.parse}) and the
file storage behind the same interface.  etcd itself is exercised in
tests/e2e/test_etcd_storage.py.
"""

import pytest
from zope.interface.verify import verifyObject

from exmta.config.storage import EtcdLocation, EtcdStorage, FileStorage, storageFor
from exmta.errors import ConfigError
from exmta.interfaces import IConfigurationStorage


def test_endpointsKeyAndOptions():
    location = EtcdLocation.parse(
        "etcds://exmta@etcd1:2379,[::1]:2380,etcd3/exmta/fabrikam/"
        "?cacert=/etc/ca.pem&cert=/etc/c.pem&key=/etc/c.key&passwordFile=/etc/pw"
    )
    assert location.endpoints == ("https://etcd1:2379", "https://[::1]:2380", "https://etcd3:2379")
    assert location.key == "/exmta/fabrikam"
    assert location.user == "exmta"
    assert (location.cacert, location.cert, location.clientKey, location.passwordFile) == (
        "/etc/ca.pem", "/etc/c.pem", "/etc/c.key", "/etc/pw"
    )
    assert location.name == "etcds://etcd1:2379,[::1]:2380,etcd3:2379/exmta/fabrikam"


@pytest.mark.parametrize(
    "url, message",
    [
        ("etcd://user:secret@h:2379/k", "carries no password"),
        ("etcd://h:2379/", "must name the key"),
        ("etcd://h:2379", "must name the key"),
        ("etcd://h:port/k", "host:port"),
        ("etcd://h/k?colour=blue", "unknown option 'colour'"),
        ("etcd://h/k?cacert=/ca.pem", "for etcds://"),
        ("etcds://h/k?cert=/c.pem", "cert and key go together"),
        ("etcd://user@h/k", r"needs \?passwordFile="),
    ],
)
def test_malformed(url, message):
    with pytest.raises(ConfigError, match=message):
        storageFor(url)


def test_storages(tmp_path):
    """
    A path is a file, an etcd URL is etcd; both provide the interface, and
    an organization on etcd takes its relative paths from the local folder.
    """
    path = tmp_path / "org.ini"
    path.write_text("[TransportServer HubA]\nFqdn = huba.fabrikam.com\n")
    file = storageFor(str(path))
    assert isinstance(file, FileStorage)
    verifyObject(IConfigurationStorage, file)
    etcd = EtcdStorage(EtcdLocation.parse("etcd://127.0.0.1:2379/exmta/fabrikam"), str(tmp_path / "HubA"))
    verifyObject(IConfigurationStorage, etcd)
    organization = etcd.organization(file.read()[0])
    assert organization.path == "etcd://127.0.0.1:2379/exmta/fabrikam"
    assert organization.accountStorePath == str(tmp_path / "HubA" / "accounts")
    assert organization.transportServers["HubA"].queueDatabasePath == str(
        tmp_path / "HubA" / "var" / "HubA" / "queue"
    )
