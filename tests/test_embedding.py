"""
Embedding: exmta.makeService attached to a user's own Twisted application,
talked to by a real SMTP client over loopback.
"""

import os
import shutil
import smtplib
import tempfile

from twisted.application import service
from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

import exmta
from tests.e2e.harness import freePort, maildirMessages, writeOrganization

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}
"""


def send(port, body):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        return smtp.sendmail("a@contoso.com", ["kim@fabrikam.com"], body)


class EmbeddingTests(TestCase):
    def test_makeServiceJoinsAnApplication(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        port = freePort()
        path = writeOrganization(folder, ORG.format(port=port))
        application = service.Application("mail and more")
        parent = service.IServiceCollection(application)
        other = service.Service()
        other.setServiceParent(parent)

        mail = exmta.makeService(exmta.loadOrganization(path), "HubA", reactor=reactor)
        self.assertTrue(service.IService.providedBy(mail))
        self.assertIsInstance(mail, service.MultiService)
        mail.setServiceParent(parent)
        service.IService(application).startService()
        self.addCleanup(service.IService(application).stopService)

        queue = mail.getServiceNamed("queue")
        delivered = []

        def sent(refused):
            self.assertEqual(refused, {})
            queueIds = [m.queueId for m in queue.spool.messages()]
            return queue.processed(queueIds[0]) if queueIds else None

        def check(_):
            messages = maildirMessages(os.path.join(folder, "var", "HubA", "mailboxes", "kim@fabrikam.com"))
            delivered.extend(messages)
            self.assertEqual(len(messages), 1)
            self.assertIn(b"Subject: embedded", messages[0])

        d = threads.deferToThread(send, port, b"Subject: embedded\r\n\r\nhi\r\n")
        d.addCallback(sent)
        d.addCallback(check)
        return d
