"""
A running server follows its organization's etcd key: L{EtcdWatch} reads
the key, then watches it through etcd's v3 JSON gateway (C{/v3/kv/range},
then a streaming C{/v3/watch} from the next revision), on Twisted's HTTP
client, and hands every new text to the server, which reloads as on
SIGHUP.

When etcd cannot be reached the server keeps running on the last good
configuration: the watch logs so once, tries the endpoints again (after
0.25 s, doubling up to 2 s) and, once one answers, reads the key again
and says so, so a change made meanwhile is applied on the first answer.
"""

import json

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.logger import Logger
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from exmta.config.storage import valueOf

FIRST_DELAY = 0.25
LONGEST_DELAY = 2.0


class EtcdRefused(Exception):
    """
    etcd answered, but not with what was asked.
    """


@implementer(IPolicyForHTTPS)
class _EtcdTLS:
    """
    https to etcd: its certificate checked against the location's cacert
    (else the system's roots), the client certificate shown when given.
    """

    def __init__(self, location):
        self._trustRoot = None
        self._client = None
        if location.cacert:
            with open(location.cacert, "rb") as handle:
                self._trustRoot = Certificate.loadPEM(handle.read())
        if location.cert:
            with open(location.cert, "rb") as cert, open(location.clientKey, "rb") as key:
                self._client = PrivateCertificate.loadPEM(cert.read() + b"\n" + key.read())

    def creatorForNetloc(self, hostname, port):
        return optionsForClientTLS(
            hostname.decode("ascii"), trustRoot=self._trustRoot, clientCertificate=self._client
        )


class _Stream(Protocol):
    """
    The body of a C{/v3/watch} answer: JSON objects, one after the other.
    """

    def __init__(self, received):
        self._received = received
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self.ended = defer.Deferred()

    def dataReceived(self, data):
        self._buffer += data.decode("utf-8")
        while True:
            text = self._buffer.lstrip()
            try:
                message, end = self._decoder.raw_decode(text)
            except ValueError:
                self._buffer = text
                return
            self._buffer = text[end:]
            self._received(message)

    def connectionLost(self, reason):
        self.ended.callback(None)


class EtcdWatch(service.Service):
    """
    Follows one L{EtcdStorage <exmta.config.storage.EtcdStorage>}'s key.

    @ivar text: the newest text read from etcd (the one the server runs on,
        unless it was refused).
    @ivar reachable: whether etcd answered the last attempt.
    """

    log = Logger()

    def __init__(self, storage, text, changed, reactor, agent=None):
        """
        @param text: the text the server started on.
        @param changed: called with each new text etcd holds.
        @param agent: the HTTP client (an L{Agent} by default).
        """
        self.storage = storage
        self.text = text
        self.reachable = None
        self._changed = changed
        self._reactor = reactor
        self._location = storage.etcd
        if agent is None:
            policy = _EtcdTLS(self._location) if self._location.cacert or self._location.cert else None
            agent = Agent(reactor, contextFactory=policy) if policy else Agent(reactor)
        self._agent = agent
        self._index = 0
        self._delay = FIRST_DELAY
        self._pending = None
        self._stream = None
        self._token = None

    def startService(self):
        super().startService()
        self._follow()

    def stopService(self):
        super().stopService()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._stream is not None and self._stream.transport is not None:
            self._stream.transport.stopProducing()

    @property
    def _endpoint(self):
        return self._location.endpoints[self._index]

    def _follow(self):
        self._pending = defer.ensureDeferred(self._once())
        self._pending.addErrback(self._failed)

    async def _once(self):
        self._token = None
        if self._location.user:
            answer = await self._post("/v3/auth/authenticate", self._location.authenticateBody())
            self._token = answer["token"]
        answer = await self._post("/v3/kv/range", self._location.rangeBody())
        text, revision = self._location.stored(answer)
        start = int(answer["header"]["revision"]) + 1
        response = await self._request("/v3/watch", self._location.watchBody(start))
        self._pending = None
        self._reached(revision)
        self._offer(text)
        self._stream = _Stream(self._received)
        response.deliverBody(self._stream)
        await self._stream.ended
        self._stream = None
        if self.running:
            self._lost("the watch ended")

    def _failed(self, failure):
        if failure.check(defer.CancelledError) or not self.running:
            return None
        self._pending = None
        self._lost(failure.getErrorMessage() or failure.type.__name__)

    def _reached(self, revision):
        self._delay = FIRST_DELAY
        if self.reachable is not True:
            self.log.info(
                "etcd reachable at {endpoint}; following {key} from revision {revision}",
                endpoint=self._endpoint,
                key=self.storage.name,
                revision=revision,
            )
        self.reachable = True

    def _lost(self, reason):
        if self.reachable is not False:
            self.log.warn(
                "etcd unreachable ({reason}); running on the last good configuration",
                reason=reason,
            )
        self.reachable = False
        self._index = (self._index + 1) % len(self._location.endpoints)
        self._pending = defer.Deferred()
        call = self._reactor.callLater(self._delay, self._pending.callback, None)
        self._pending.addCallbacks(lambda _: self._follow(), lambda _: call.cancel())
        self._pending.addErrback(lambda failure: failure.trap(defer.CancelledError))
        self._delay = min(self._delay * 2, LONGEST_DELAY)

    def _received(self, message):
        result = message.get("result", message)
        if result.get("canceled"):
            # Compaction went past the revision asked for; read again.
            if self._stream is not None and self._stream.transport is not None:
                self._stream.transport.stopProducing()
            return
        for event in result.get("events", ()):
            if event.get("type", "PUT") == "DELETE":
                self.log.error(
                    "{key} was deleted from etcd; the running configuration stays",
                    key=self.storage.name,
                )
                continue
            self._offer(valueOf(event["kv"], self.storage.name))

    def _offer(self, text):
        if text != self.text:
            self.text = text
            self._changed(text)

    async def _post(self, path, body):
        response = await self._request(path, body)
        return json.loads(await readBody(response))

    async def _request(self, path, body):
        headers = Headers({b"Content-Type": [b"application/json"]})
        if self._token:
            headers.addRawHeader(b"Authorization", self._token.encode("ascii"))
        response = await self._agent.request(
            b"POST",
            (self._endpoint + path).encode("ascii"),
            headers,
            _Body(json.dumps(body).encode("utf-8")),
        )
        if response.code != 200:
            answer = await readBody(response)
            try:
                message = json.loads(answer).get("message")
            except ValueError:
                message = None
            raise EtcdRefused(f"{path}: {response.code} {message or response.phrase.decode()}")
        return response


@implementer(IBodyProducer)
class _Body:
    """
    A small request body, written at once.
    """

    def __init__(self, data):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return defer.succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass
