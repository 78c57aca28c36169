"""
The send side: delivery over SMTP to smart hosts, MX hosts and the other
transport servers of the organization (L{SmtpDelivery}, an
L{exmta.interfaces.IRemoteDelivery}).

  - L{exmta.send.delivery}: next hop settings, host failover, the
    IRemoteDelivery itself;
  - L{exmta.send.client}: the SMTP client, Twisted's ESMTPClient made fit
    for an MTA;
  - L{exmta.send.pool}: connection reuse and the outbound connection caps;
  - L{exmta.send.limits}: those caps counted over every process of the
    server;
  - L{exmta.send.hosts}: smart hosts, MX lookup and failed-host memory;
  - L{exmta.send.tls}: the TlsAuthLevel contexts.
"""

from exmta.send.delivery import SmtpDelivery

__all__ = ["SmtpDelivery"]
