"""
Where org.ini's text lives (L{IConfigurationStorage}): a file, the default
for one server, or a key of etcd that the transport servers of an
organization share.

An etcd location is a URL naming the endpoints and the key:

    etcd://127.0.0.1:2379,127.0.0.2:2379/exmta/fabrikam
    etcds://exmta@etcd1.fabrikam.com:2379/exmta/fabrikam?cacert=/etc/exmta/etcd-ca.pem
        &cert=/etc/exmta/huba.pem&key=/etc/exmta/huba.key&passwordFile=/etc/exmta/etcd-password

C{etcds} speaks https to etcd, checking its certificate against
C{cacert} (the system's roots without it) and showing C{cert} and C{key}
when etcd asks for a client certificate.  A user name before C{@} logs on
with the password in C{passwordFile}: a password never stands in a URL,
which the process list and the logs show.  The stored value is org.ini's
text, exactly; relative paths in it start from the server's working
folder (L{EtcdStorage.folder}), where the server also keeps a copy of the
last configuration it ran (L{EtcdStorage.cachePath}) to start from when
etcd cannot be reached.

This module talks to etcd's v3 JSON gateway (C{/v3/kv/range},
C{/v3/kv/txn}; keys and values in base64) with a blocking HTTP client,
for the Shell and for a server's start, before its reactor runs.  A
running server follows the key with L{exmta.configwatch}, on Twisted.
"""

import base64
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass

from zope.interface import implementer

from exmta.config.organization import parseOrganization
from exmta.durable import locked, makeFolders, replaceFile
from exmta.errors import ConfigError
from exmta.interfaces import IConfigurationStorage

_BOM = "\ufeff"
_OPTIONS = ("cacert", "cert", "key", "passwordFile")
# How long the Shell waits for one etcd endpoint before trying the next.
TIMEOUT = 5


def storageFor(location):
    """
    @param location: org.ini's path, or an C{etcd://} or C{etcds://} URL.
    @return: the L{IConfigurationStorage} it names.
    @raise ConfigError: a malformed etcd URL.
    """
    if isEtcd(location):
        return EtcdStorage(EtcdLocation.parse(location))
    return FileStorage(location)


def isEtcd(location):
    return location.startswith(("etcd://", "etcds://"))


def loadOrganization(location):
    """
    Read and validate org.ini, from a file or from etcd.

    @return: an L{Organization <exmta.config.model.Organization>}.
    @raise ConfigError: naming the file or etcd key, line, section and key
        at fault.
    """
    storage = storageFor(location)
    return storage.organization(storage.read()[0])


@implementer(IConfigurationStorage)
class FileStorage:
    """
    org.ini as a file: written under its lock (L{exmta.durable.locked}),
    replaced atomically, so two Shells never lose each other's change.
    """

    def __init__(self, path):
        self.location = self.name = os.path.abspath(path)
        self.folder = os.path.dirname(self.location)

    def _real(self):
        # The lock and the rename act on the file a symbolic link points to.
        return os.path.realpath(self.location)

    def read(self):
        try:
            with open(self._real(), "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise ConfigError(f"cannot read: {error.strerror}", self.name) from None
        return _decoded(data, self.name), None

    def writing(self):
        return locked(self._real())

    def replace(self, text, revision):
        path = self._real()
        replaceFile(path, text.encode("utf-8"), keepModeAndOwner=os.path.exists(path))
        return True

    def organization(self, text):
        return parseOrganization(text.removeprefix(_BOM), self.name)


def _decoded(data, name):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"is not UTF-8 text ({error.reason})", name) from None


class EtcdUnavailable(ConfigError):
    """
    No endpoint of etcd answered.
    """


def encode(data):
    """
    @return: C{data} (text or bytes) in base64, as the JSON gateway takes
        keys and values.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class EtcdLocation:
    """
    A parsed etcd URL.

    @ivar endpoints: C{("http://127.0.0.1:2379", ...)}, in the order given.
    @ivar key: the key holding org.ini's text.
    @ivar user: the etcd user to log on as, or L{None}.
    """

    text: str
    endpoints: tuple
    key: str
    user: str | None = None
    passwordFile: str | None = None
    cacert: str | None = None
    cert: str | None = None
    clientKey: str | None = None

    @classmethod
    def parse(cls, text):
        def fail(message):
            return ConfigError(f"{message}: {text!r}", "-c")

        scheme, rest = text.split("://", 1)
        netloc, slash, remainder = rest.partition("/")
        path, _, query = remainder.partition("?")
        user, at, hosts = netloc.rpartition("@")
        if ":" in user:
            raise fail(
                "an etcd URL carries no password (the process list would show it); "
                "put it in a file and name the file with ?passwordFile="
            )
        endpoints = []
        for host in hosts.split(","):
            if host.startswith("["):
                address, _, port = host[1:].partition("]")
                port = port.removeprefix(":")
                address = f"[{address}]"
            else:
                address, _, port = host.partition(":")
            if not address or not (port or "2379").isdigit():
                raise fail("expected host:port endpoints separated by commas")
            endpoints.append(
                f"{'https' if scheme == 'etcds' else 'http'}://{address}:{port or 2379}"
            )
        if not slash or not path.strip("/"):
            raise fail("the URL must name the key holding org.ini, e.g. /exmta/fabrikam")
        options = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name not in _OPTIONS:
                raise fail(f"unknown option {name!r}; known: {', '.join(_OPTIONS)}")
            options[name] = os.path.abspath(os.path.expanduser(value))
        if scheme == "etcd" and {"cacert", "cert", "key"} & set(options):
            raise fail("cacert, cert and key are for etcds:// (https to etcd)")
        if ("cert" in options) != ("key" in options):
            raise fail("cert and key go together")
        if user and "passwordFile" not in options:
            raise fail(f"user {user!r} needs ?passwordFile= naming the file of its password")
        return cls(
            text=text,
            endpoints=tuple(endpoints),
            key="/" + path.strip("/"),
            user=user or None,
            passwordFile=options.get("passwordFile"),
            cacert=options.get("cacert"),
            cert=options.get("cert"),
            clientKey=options.get("key"),
        )

    @property
    def name(self):
        """
        The URL of the key without its user and options, for messages.
        """
        hosts = ",".join(endpoint.split("://", 1)[1] for endpoint in self.endpoints)
        return f"{self.text.split('://', 1)[0]}://{hosts}{self.key}"

    def password(self):
        """
        @return: the etcd user's password, the first line of its file.
        @raise ConfigError: the file cannot be read.
        """
        try:
            with open(self.passwordFile, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"cannot read: {error.strerror}", self.passwordFile) from None

    def authenticateBody(self):
        return {"name": self.user, "password": self.password()}

    def rangeBody(self):
        return {"key": encode(self.key)}

    def watchBody(self, startRevision):
        return {"create_request": {"key": encode(self.key), "start_revision": str(startRevision)}}

    def replaceBody(self, text, revision):
        body = {"success": [{"request_put": {"key": encode(self.key), "value": encode(text)}}]}
        if revision is not None:
            # A key never written has modification revision 0.
            body["compare"] = [
                {"key": encode(self.key), "target": "MOD", "result": "EQUAL",
                 "mod_revision": str(revision)}
            ]
        return body

    def stored(self, answer):
        """
        @param answer: the gateway's answer to L{rangeBody}.
        @return: C{(text, modification revision)}.
        @raise ConfigError: nothing is stored under the key, or it is not
            UTF-8.
        """
        kvs = answer.get("kvs") or []
        if not kvs:
            raise ConfigError(
                "no organization is stored under this key; store one with: "
                f"exmta config import -c {self.text} org.ini",
                self.name,
            )
        return valueOf(kvs[0], self.name), int(kvs[0].get("mod_revision", 0))


def valueOf(kv, name):
    """
    @return: the text of a key-value the gateway returned.
    """
    return _decoded(base64.b64decode(kv.get("value", "")), name)


@implementer(IConfigurationStorage)
class EtcdStorage:
    """
    org.ini's text as the value of one etcd key, replaced with a
    transaction that compares the key's modification revision: of two
    Shells editing at once, the second to write finds the revision moved
    on and does its change again on the new text.
    """

    def __init__(self, location, folder=None):
        self.etcd = location
        self.location = location.text
        self.name = location.name
        self.folder = os.path.abspath(folder or os.curdir)
        self._token = None
        self._preferred = 0

    @property
    def cachePath(self):
        """
        The copy of the last configuration this server ran, beside its
        other local state.
        """
        return os.path.join(self.folder, "org.ini.etcd-cache")

    def read(self):
        return self.etcd.stored(self.post("/v3/kv/range", self.etcd.rangeBody()))

    def writing(self):
        return nullcontext()

    def replace(self, text, revision):
        answer = self.post("/v3/kv/txn", self.etcd.replaceBody(text, revision))
        return bool(answer.get("succeeded"))

    def organization(self, text):
        return parseOrganization(
            text.removeprefix(_BOM), self.name, location=self.location, folder=self.folder
        )

    def writeCache(self, text):
        """
        Keep C{text}, a configuration this server runs, for a start while
        etcd is down.  Blocks.
        """
        makeFolders(self.folder)
        replaceFile(self.cachePath, text.encode("utf-8"))

    def readCache(self):
        """
        @return: the text L{writeCache} kept.
        @raise ConfigError: there is none.
        """
        try:
            with open(self.cachePath, "rb") as handle:
                return _decoded(handle.read(), self.cachePath)
        except OSError as error:
            raise ConfigError(
                f"cannot read the cached configuration: {error.strerror}", self.cachePath
            ) from None

    def sslContext(self):
        """
        @return: the TLS context for C{etcds}, or L{None} for C{etcd}.
        """
        if not self.etcd.endpoints[0].startswith("https"):
            return None
        context = ssl.create_default_context(cafile=self.etcd.cacert)
        if self.etcd.cert:
            context.load_cert_chain(self.etcd.cert, self.etcd.clientKey)
        return context

    def post(self, path, body):
        """
        Send one request to the gateway, trying each endpoint in turn,
        logging on first when the location names a user.

        @return: the decoded JSON answer.
        @raise EtcdUnavailable: no endpoint answered.
        @raise ConfigError: etcd refused the request.
        """
        if self.etcd.user and self._token is None:
            self._token = self._post("/v3/auth/authenticate", self.etcd.authenticateBody())[
                "token"
            ]
        try:
            return self._post(path, body)
        except _Unauthenticated:
            # Simple tokens expire after some minutes without use.
            self._token = None
            if not self.etcd.user:
                raise ConfigError("etcd requires a user; name one in the URL", self.name) from None
            return self.post(path, body)

    def _post(self, path, body):
        context = self.sslContext()
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = self._token
        failures = []
        count = len(self.etcd.endpoints)
        for offset in range(count):
            index = (self._preferred + offset) % count
            endpoint = self.etcd.endpoints[index]
            request = urllib.request.Request(
                endpoint + path, json.dumps(body).encode("utf-8"), headers
            )
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as answer:
                    self._preferred = index
                    return json.load(answer)
            except urllib.error.HTTPError as error:
                refusal = _refusal(error)
                if refusal.get("code") == 16:
                    raise _Unauthenticated() from None
                message = refusal.get("message") or error.reason
                if "user name is empty" in message:
                    message += " (etcd requires a user: etcd://USER@host:port/key?passwordFile=)"
                raise ConfigError(f"etcd at {endpoint} refused: {message}", self.name) from None
            except (urllib.error.URLError, OSError, socket.timeout) as error:
                failures.append(f"{endpoint}: {getattr(error, 'reason', error)}")
        raise EtcdUnavailable("etcd is unreachable (" + "; ".join(failures) + ")", self.name)


class _Unauthenticated(Exception):
    pass


def _refusal(error):
    try:
        return json.loads(error.read())
    except ValueError:
        return {}
