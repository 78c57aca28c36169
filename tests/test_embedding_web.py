"""
Embedding with twisted.web: the worked example of docs/embedding.rst, run
as written, puts exmta and a status page of its queue into one
application.  A message sent with smtplib over loopback shows on the page,
read with twisted.web's Agent, while the application runs under the
test's reactor.
"""

import os
import re
import shutil
import smtplib
import tempfile
import textwrap
import types

import pytest
from twisted.application import service
from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.names import hosts
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.e2e.harness import REPOSITORY, freePort, writeOrganization

EMBEDDING = os.path.join(REPOSITORY, "docs", "embedding.rst")

# Mail for contoso.com goes to a smart host nobody listens on, so it stays
# queued for the page to show; the test's own resolver knows the smart
# host's name.
ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[ReceiveConnector Relay]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[SendConnector ToSmartHost]
AddressSpaces = contoso.com
SmartHosts = smarthost.fabrikam.com:{down}
DNSRoutingEnabled = $false
"""


def workedExample():
    """
    The C{.. code:: python} block of docs/embedding.rst that follows the
    comment naming this test file, run as the module C{mailstatus}.
    """
    with open(EMBEDDING, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    comment = next(i for i, line in enumerate(lines) if "tests/test_embedding_web.py runs" in line)
    start = next(i for i in range(comment, len(lines)) if lines[i] == ".. code:: python") + 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")),
        len(lines),
    )
    module = types.ModuleType("mailstatus")
    exec(compile(textwrap.dedent("\n".join(lines[start:end])), EMBEDDING, "exec"), module.__dict__)
    return module


def send(port, recipient):
    """
    @return: the queue id of the message exmta accepted.
    """
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.fabrikam.com")
        assert client.mail("kim@fabrikam.com")[0] == 250
        assert client.rcpt(recipient)[0] == 250
        code, text = client.data(b"Subject: status\r\n\r\nWaiting.\r\n")
        assert code == 250, text
    return re.search(rb"<([0-9A-F]+)@", text).group(1).decode()


class StatusPageTests(TestCase):
    # Twisted's HTTP/1.1 client hands readBody a transport proxy without
    # abortConnection, and readBody warns about it.
    @pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
    @inlineCallbacks
    def test_queuedMessageOnTheStatusPage(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        smtpPort, webPort = freePort(), freePort()
        path = writeOrganization(folder, ORGANIZATION.format(smtp=smtpPort, down=freePort()))
        hostsFile = os.path.join(folder, "hosts")
        with open(hostsFile, "w") as handle:
            handle.write("127.0.0.1 smarthost.fabrikam.com\n")

        application = workedExample().makeApplication(
            path, webPort, reactor, resolver=hosts.Resolver(hostsFile.encode())
        )
        running = service.IService(application)
        running.startService()
        self.addCleanup(running.stopService)

        queueId = yield threads.deferToThread(send, smtpPort, "someone@contoso.com")
        response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{webPort}/".encode())
        page = (yield readBody(response)).decode("utf-8")

        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"text/plain; charset=utf-8"])
        [line] = page.splitlines()
        self.assertTrue(
            line.startswith(f"{queueId} from <kim@fabrikam.com> to <someone@contoso.com>: Ready"),
            line,
        )
