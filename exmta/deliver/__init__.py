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
from exmta.interfaces import IDeliveryAgentFactory

__all__ = ["MaildirDeliveryAgent", "deliveryAgentFactories", "loadDeliveryAgent"]


def deliveryAgentFactories():
    """
    @return: a dict of every L{IDeliveryAgentFactory} plugin by lower-case
        name.
    """
    from twisted.plugin import getPlugins

    import exmta.plugins

    return {f.name.lower(): f for f in getPlugins(IDeliveryAgentFactory, exmta.plugins)}


def loadDeliveryAgent(organization, transportServer, reactor, factories=None):
    """
    Make the delivery agent C{transportServer}'s DeliveryAgent names, and
    check every C{[DeliveryAgent Name]} section against its plugin (used
    by this server or not, so that a mistake shows before it is used).

    @param factories: the L{IDeliveryAgentFactory}s to choose from; by
        default the plugins in L{exmta.plugins}.
    @return: the server's L{exmta.interfaces.IDeliveryAgent}.
    @raise exmta.errors.ConfigError: a name has no plugin, or the plugin
        refused its settings; naming the DeliveryAgent key or the
        section's key at fault.
    """
    if factories is None:
        byName = deliveryAgentFactories()
    else:
        byName = {factory.name.lower(): factory for factory in factories}

    def make(name, origin, key):
        factory = byName.get(name.lower())
        if factory is None:
            raise origin.error(
                f"no delivery agent plugin is named {name!r}; installed: "
                + (", ".join(sorted(f.name for f in byName.values())) or "none"),
                key,
            )
        section = organization.deliveryAgentSettings(name)
        settings = {} if section is None else dict(section.settings)
        try:
            return factory.makeDeliveryAgent(settings, transportServer, reactor)
        except ValueError as error:
            if section is not None:
                raise section.origin.refused(error) from None
            raise origin.error(
                f"{error}; give it in a [DeliveryAgent {factory.name}] section", key
            ) from None

    for section in organization.deliveryAgents:
        if section.name.lower() != transportServer.deliveryAgent.lower():
            make(section.name, section.origin, None)
    return make(transportServer.deliveryAgent, transportServer.origin, "DeliveryAgent")
