"""
The Maildir delivery agent: each mailbox a Maildir under the
TransportServer's MailboxDatabasePath (L{exmta.deliver.maildir}).  It is
the DeliveryAgent unless org.ini names another, and it takes no keys.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.deliver.maildir import MaildirDeliveryAgent
from exmta.errors import SettingError
from exmta.interfaces import IDeliveryAgentFactory


@implementer(IPlugin, IDeliveryAgentFactory)
class Maildir:
    name = "Maildir"

    def makeDeliveryAgent(self, settings, transportServer, reactor):
        for key in settings:
            raise SettingError(
                key,
                "the Maildir delivery agent takes no keys; its folder is the "
                "TransportServer's MailboxDatabasePath",
            )
        return MaildirDeliveryAgent(transportServer.mailboxDatabasePath, reactor)


maildir = Maildir()
