"""
Routing: where each recipient goes.  Pure functions of the organization.

  - L{Resolver}: local, remote or unknown, by accepted domains and mailboxes.
  - L{chooseSendConnector} / L{nextHopFor}: which send connector and next
    hop a remote recipient takes; L{forwardingTarget}: where another
    transport server takes mail forwarded to it.
"""

from exmta.routing.connectors import (
    DNS_CONNECTOR_DELIVERY,
    SMART_HOST_CONNECTOR_DELIVERY,
    SMTP_RELAY_WITHIN_AD_SITE,
    chooseSendConnector,
    forwardingTarget,
    linkedNextHop,
    nextHopFor,
)
from exmta.routing.resolver import LOCAL, REMOTE, UNKNOWN, Resolution, Resolver

__all__ = [
    "DNS_CONNECTOR_DELIVERY",
    "LOCAL",
    "REMOTE",
    "SMART_HOST_CONNECTOR_DELIVERY",
    "SMTP_RELAY_WITHIN_AD_SITE",
    "UNKNOWN",
    "Resolution",
    "Resolver",
    "chooseSendConnector",
    "forwardingTarget",
    "linkedNextHop",
    "nextHopFor",
]
