"""
The SenderBlockList transport agent: refuses MAIL FROM the senders listed.

    [TransportAgent SenderBlockList]
    Priority = 10
    BlockedSenders = a@x.com, *@spam.example

C{*@domain} blocks a whole domain; matching ignores case.  A blocked sender
gets 550 5.7.1.
"""

from zope.interface import implementer
from twisted.plugin import IPlugin

from exmta.agents import Verdict
from exmta.envelope import Reply
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory, IReceiveAgent

SENDER_DENIED = Reply(550, "5.7.1", "Sender denied")


@implementer(IReceiveAgent)
class SenderBlockListAgent:
    def __init__(self, addresses, domains):
        self.addresses = frozenset(addresses)
        self.domains = frozenset(domains)

    def OnMailCommand(self, event):
        sender = event.address
        if not sender.isNull and (
            str(sender).lower() in self.addresses or sender.domain.lower() in self.domains
        ):
            return Verdict.reject(SENDER_DENIED)
        return Verdict.continue_()


@implementer(IPlugin, IAgentFactory)
class SenderBlockList:
    name = "SenderBlockList"

    def makeAgent(self, settings, organization, reactor):
        addresses, domains = set(), set()
        for key, value in settings.items():
            if key.lower() != "blockedsenders":
                raise SettingError(key, "unknown key for SenderBlockList; known keys are: BlockedSenders")
            for item in filter(None, (part.strip().lower() for part in value.split(","))):
                local, at, domain = item.rpartition("@")
                if not at or not local or not domain:
                    raise SettingError(key, f"{item!r} is not an address or *@domain")
                if local == "*":
                    domains.add(domain)
                else:
                    addresses.add(item)
        return SenderBlockListAgent(addresses, domains)


senderBlockList = SenderBlockList()
