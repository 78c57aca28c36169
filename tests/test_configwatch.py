"""
L{exmta.configwatch.EtcdWatch} in memory: a fake HTTP agent plays etcd's
JSON gateway, a L{Clock} the time between attempts.  The real etcd is in
tests/e2e/test_several_servers.py.
"""

import base64
import json

from twisted.internet import defer
from twisted.internet import error
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from exmta.config.storage import EtcdLocation, EtcdStorage
from exmta.configwatch import EtcdWatch, _Stream


def encoded(text):
    return base64.b64encode(text.encode()).decode()


class Response:
    code = 200
    phrase = b"OK"

    def __init__(self, body=b"", open=False):
        self.body = body
        self.open = open
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(Transport())
        if self.body:
            protocol.dataReceived(self.body)
        if not self.open:
            protocol.connectionLost(Failure(ResponseDone()))

    def send(self, message):
        self.protocol.dataReceived(json.dumps(message).encode() + b"\n")

    def end(self):
        self.protocol.connectionLost(Failure(ResponseDone()))


class Transport:
    def stopProducing(self):
        pass

    def abortConnection(self):
        pass


class Agent:
    """
    Answers each request with the next of C{answers}: a L{Response}, or an
    exception to fail with.
    """

    def __init__(self):
        self.answers = []
        self.requests = []

    def request(self, method, uri, headers, body):
        self.requests.append(uri.decode().rsplit("/", 3)[-2:])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)


def stored(text, revision):
    return Response(
        json.dumps(
            {"header": {"revision": str(revision)},
             "kvs": [{"value": encoded(text), "mod_revision": str(revision)}]}
        ).encode()
    )


class StreamTests(SynchronousTestCase):
    def test_objectsAcrossChunks(self):
        """
        The watch's JSON objects are found whatever the chunk boundaries.
        """
        received = []
        stream = _Stream(received.append)
        data = b'{"result": {"created": true}}\n{"result": {"events": [1]}}{"result": {}}'
        for index in range(0, len(data), 7):
            stream.dataReceived(data[index : index + 7])
        self.assertEqual(
            received, [{"result": {"created": True}}, {"result": {"events": [1]}}, {"result": {}}]
        )


class WatchTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.agent = Agent()
        self.changes = []
        storage = EtcdStorage(EtcdLocation.parse("etcd://127.0.0.1:1,127.0.0.1:2/exmta/fabrikam"))
        self.watch = EtcdWatch(storage, "first", self.changes.append, self.clock, agent=self.agent)
        self.logged = []
        self.watch.log = Logger(observer=self.logged.append)

    def messages(self):
        return [event["log_format"] for event in self.logged]

    def test_followsChanges(self):
        """
        The text read at start is offered only if it differs from the one
        running; each PUT event offers the new text; a DELETE changes
        nothing and is logged.
        """
        stream = Response(open=True)
        self.agent.answers = [stored("first", 5), stream]
        self.watch.startService()
        self.assertEqual(self.agent.requests, [["kv", "range"], ["v3", "watch"]])
        self.assertEqual(self.changes, [])
        self.assertTrue(self.watch.reachable)
        stream.send({"result": {"created": True}})
        stream.send({"result": {"events": [{"kv": {"value": encoded("second")}}]}})
        stream.send({"result": {"events": [{"type": "DELETE", "kv": {}}]}})
        self.assertEqual(self.changes, ["second"])
        self.assertIn("{key} was deleted from etcd; the running configuration stays", self.messages())
        self.watch.stopService()

    def test_unreachable(self):
        """
        A failed attempt is logged once, the endpoints are tried in turn
        after 0.25 s, doubling up to 2 s; once etcd answers, what changed
        meanwhile is applied and the server says so.
        """
        refused = error.ConnectionRefusedError()
        self.agent.answers = [refused] * 6
        self.watch.startService()
        for delay in (0.25, 0.5, 1.0, 2.0, 2.0):
            self.clock.advance(delay - 0.01)
            attempts = len(self.agent.requests)
            self.clock.advance(0.01)
            self.assertEqual(len(self.agent.requests), attempts + 1)
        self.assertFalse(self.watch.reachable)
        self.assertEqual(len(self.agent.requests), 6)
        self.assertEqual(
            self.messages().count(
                "etcd unreachable ({reason}); running on the last good configuration"
            ),
            1,
        )
        stream = Response(open=True)
        self.agent.answers = [stored("changed meanwhile", 9), stream]
        self.clock.advance(2.0)
        self.assertEqual(self.changes, ["changed meanwhile"])
        self.assertTrue(self.watch.reachable)
        self.assertIn(
            "etcd reachable at {endpoint}; following {key} from revision {revision}",
            self.messages(),
        )
        stream.end()
        self.assertFalse(self.watch.reachable)
        self.watch.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
