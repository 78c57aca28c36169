"""
Local delivery agents: where mail for this organization's mailboxes is
written.

A TransportServer's C{DeliveryAgent} key names the
L{exmta.interfaces.IDeliveryAgentFactory} plugin that delivers its local
recipients: C{Maildir} (L{exmta.deliver.maildir}) unless set, or C{Lmtp}
(L{exmta.deliver.lmtp}) to hand them to a mail store such as Dovecot.
Its settings come from a C{[DeliveryAgent Name]} section of org.ini.
"""

from exmta.deliver.maildir import MaildirDeliveryAgent
from exmta.pluginkinds import DELIVERY_AGENT, byName

__all__ = ["MaildirDeliveryAgent", "deliveryAgentFactories", "loadDeliveryAgent"]


def deliveryAgentFactories():
    """
    @return: a dict of every L{exmta.interfaces.IDeliveryAgentFactory}
        plugin by lower-case name.
    """
    return DELIVERY_AGENT.installed()


def loadDeliveryAgent(organization, transportServer, reactor, factories=None):
    """
    Make the delivery agent C{transportServer}'s DeliveryAgent names, and
    check every C{[DeliveryAgent Name]} section against its plugin (used
    by this server or not, so that a mistake shows before it is used).

    @param factories: the L{exmta.interfaces.IDeliveryAgentFactory}s to choose from; by
        default the plugins in L{exmta.plugins}.
    @return: the server's L{exmta.interfaces.IDeliveryAgent}.
    @raise exmta.errors.ConfigError: a name has no plugin, or the plugin
        refused its settings; naming the DeliveryAgent key or the
        section's key at fault.
    """
    factories = deliveryAgentFactories() if factories is None else byName(factories)

    def make(name, origin, key):
        factory = DELIVERY_AGENT.find(factories, name, origin, key)
        section = organization.deliveryAgentSettings(name)
        return DELIVERY_AGENT.make(factory, section, origin, key, transportServer, reactor)

    for section in organization.deliveryAgents:
        if section.name.lower() != transportServer.deliveryAgent.lower():
            make(section.name, section.origin, None)
    return make(transportServer.deliveryAgent, transportServer.origin, "DeliveryAgent")
