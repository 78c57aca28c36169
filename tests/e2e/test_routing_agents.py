"""
A routing agent installed as a plugin, in a real exmta built by
L{exmta.makeService}: a message comes in over a real SMTP connection to a
mailbox the agent expands at OnResolvedMessage to a local mailbox and a
remote address; OnRoutedMessage stamps each copy with the next hop it
takes; the local copy lands in a Maildir, the remote one at a real smart
host on loopback; OnDelivered hears of both.
"""

import json
import os
import shutil
import smtplib
import sys
import tempfile

from twisted.internet import defer, protocol, reactor, threads
from twisted.mail import smtp
from twisted.names import client
from twisted.trial.unittest import TestCase
from zope.interface import implementer

import exmta
import exmta.plugins
from exmta.tracking import readTrackingLog
from tests.e2e.harness import freePort, maildirMessages, writeOrganization

PLUGIN_MODULE = "exmta_routingprobe"

# The third party's plugin, as it would ship it in its own exmta/plugins/.
PLUGIN = '''
import json
import os

from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory, IRoutingAgent


@implementer(IRoutingAgent)
class RoutingProbeAgent:
    def __init__(self, notes):
        self.notes = notes

    def OnResolvedMessage(self, event):
        if "sales@fabrikam.com" in event.recipients:
            return Verdict.continue_(
                recipients={"sales@fabrikam.com": ("kim@fabrikam.com", "partner@contoso.com")}
            )
        return Verdict.continue_()

    def OnRoutedMessage(self, event):
        hop = "local" if event.nextHop is None else event.nextHop.key
        return Verdict.continue_(message=b"X-Routing-Probe: " + hop.encode() + b"\\r\\n" + event.message)

    def OnDelivered(self, event):
        with open(self.notes, "a") as notes:
            notes.write(json.dumps({
                "recipients": list(event.recipients),
                "nextHop": event.nextHop and event.nextHop.key,
            }) + "\\n")


@implementer(IPlugin, IAgentFactory)
class RoutingProbe:
    name = "RoutingProbe"

    def makeAgent(self, settings, organization, reactor):
        for key in settings:
            if key != "NotesFile":
                raise SettingError(key, "unknown key for RoutingProbe")
        return RoutingProbeAgent(os.path.join(organization.folder, settings["NotesFile"]))


routingProbe = RoutingProbe()
'''

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Sales]
PrimarySmtpAddress = sales@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}

[SendConnector ToSmartHost]
AddressSpaces = *
SmartHosts = [127.0.0.1]
Port = {smartHostPort}
DNSRoutingEnabled = $false

[TransportAgent RoutingProbe]
Priority = 1
NotesFile = notes.jsonl
"""


class _Message:
    def __init__(self, host, recipient):
        self.host = host
        self.recipient = recipient
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        self.host.received.append((self.recipient, b"\r\n".join(self.lines) + b"\r\n"))
        return defer.succeed(None)

    def connectionLost(self):
        pass


@implementer(smtp.IMessageDelivery)
class SmartHost:
    """
    A smart host keeping what it takes: (recipient, message) pairs.
    """

    def __init__(self):
        self.received = []

    def receivedHeader(self, helo, origin, recipients):
        return None

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        return lambda: _Message(self, str(user.dest))


class SmartHostFactory(protocol.ServerFactory):
    def __init__(self, delivery):
        self.delivery = delivery

    def buildProtocol(self, address):
        server = smtp.ESMTP()
        server.delivery = self.delivery
        server.host = "smarthost.contoso.com"
        server.factory = self
        return server


def send(port, recipient, body):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail("someone@contoso.com", [recipient], body)


class RoutingAgentPluginTests(TestCase):
    def installPlugin(self, folder):
        plugins = os.path.join(folder, "site", "exmta", "plugins")
        os.makedirs(plugins)
        with open(os.path.join(plugins, PLUGIN_MODULE + ".py"), "w") as handle:
            handle.write(PLUGIN)
        exmta.plugins.__path__.append(plugins)
        self.addCleanup(exmta.plugins.__path__.remove, plugins)
        self.addCleanup(sys.modules.pop, f"exmta.plugins.{PLUGIN_MODULE}", None)

    async def test_expandStampAndNotify(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        self.installPlugin(folder)
        smartHost = SmartHost()
        listening = reactor.listenTCP(0, SmartHostFactory(smartHost), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        port = freePort()
        path = writeOrganization(
            folder, ORG.format(port=port, smartHostPort=listening.getHost().port)
        )
        # The smart host is an address: no name is looked up.
        unused = client.Resolver(servers=[("127.0.0.1", freePort())])
        mail = exmta.makeService(exmta.loadOrganization(path), "HubA", reactor=reactor, resolver=unused)
        mail.startService()
        self.addCleanup(mail.stopService)
        queue = mail.getServiceNamed("queue")

        refused = await threads.deferToThread(
            send, port, "sales@fabrikam.com", b"Subject: for sales\r\n\r\nHello.\r\n"
        )
        self.assertEqual(refused, {})
        await queue.whenIdle()

        mailboxes = os.path.join(folder, "var", "HubA", "mailboxes")
        (local,) = maildirMessages(os.path.join(mailboxes, "kim@fabrikam.com"))
        self.assertIn(b"\r\nX-Routing-Probe: local\r\nReceived: ", local)
        self.assertFalse(os.path.exists(os.path.join(mailboxes, "sales@fabrikam.com")))
        ((recipient, remote),) = smartHost.received
        self.assertEqual(recipient, "partner@contoso.com")
        self.assertTrue(remote.startswith(b"X-Routing-Probe: ToSmartHost\r\n"), remote[:60])
        self.assertIn(b"Subject: for sales", remote)
        self.assertEqual(queue.spool.messages(), [])

        with open(os.path.join(folder, "notes.jsonl")) as handle:
            notes = sorted((json.loads(line) for line in handle), key=lambda n: str(n["nextHop"]))
        self.assertEqual(
            notes,
            [
                {"recipients": ["kim@fabrikam.com"], "nextHop": None},
                {"recipients": ["partner@contoso.com"], "nextHop": "ToSmartHost"},
            ],
        )
        server = exmta.loadOrganization(path).transportServers["HubA"]
        (expand,) = [e for e in readTrackingLog(server.messageTrackingLogPath) if e["eventId"] == "EXPAND"]
        self.assertEqual(expand["recipients"], ["kim@fabrikam.com", "partner@contoso.com"])
        self.assertEqual(expand["relatedRecipientAddress"], ["sales@fabrikam.com"])
