"""
Helpers for testing exmta and its plugins in memory, without sockets.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.testing import StringTransport
from zope.interface import implementer


@implementer(ITLSTransport)
class SMTPTransport(StringTransport):
    """
    A L{StringTransport} with real IPv4 addresses (iosim's fake ones have
    no C{.host}), which records STARTTLS instead of doing it.
    """

    def __init__(self, local=("127.0.0.1", 25), peer=("127.0.0.9", 40000)):
        super().__init__(
            hostAddress=IPv4Address("TCP", *local), peerAddress=IPv4Address("TCP", *peer)
        )
        self.tlsStarted = None

    def startTLS(self, contextFactory):
        self.tlsStarted = contextFactory

    def takeReplies(self):
        """
        @return: the reply lines written since the last call.
        """
        lines = self.value().decode("utf-8").splitlines()
        self.clear()
        return lines


def connect(factory, local=("127.0.0.1", 25), peer=("127.0.0.9", 40000)):
    """
    Connect a new protocol from C{factory} to an L{SMTPTransport}.

    @return: (protocol, transport)
    """
    transport = SMTPTransport(local, peer)
    protocol = factory.buildProtocol(transport.getPeer())
    protocol.makeConnection(transport)
    return protocol, transport
