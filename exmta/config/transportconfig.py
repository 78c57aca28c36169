"""
The organization-wide transport settings: what Exchange 2010 keeps in one
object per organization and changes with Set-TransportConfig, in org.ini's
one nameless section::

    [TransportConfig]
    MaxReceiveSize = 25MB
    MaxSendSize = 25MB
    MaxRecipientEnvelopeLimit = 1000
    TLSReceiveDomainSecureList = contoso.com
    TLSSendDomainSecureList = contoso.com
    ExternalPostmasterAddress = postmaster@fabrikam.com
    GenerateCopyOfDSNFor = 5.4.8, 5.4.6, 5.4.4, 5.2.4, 5.2.0, 5.1.4
    ShadowRedundancyEnabled = true
    ShadowHeartbeatTimeoutInterval = 00:15:00
    ShadowHeartbeatRetryCount = 3
    ShadowMessageAutoDiscardInterval = 2.00:00:00
    MaxAcknowledgementDelay = 00:00:30

Every transport server applies them (L{exmta.config.model.TransportConfig}
says how); without the section, Exchange 2010's defaults apply.
"""

import re

from exmta.config import values
from exmta.config.model import DEFAULT_DSN_COPIES, TransportConfig

KB = 1024
MB = 1024 * KB
# Exchange's ranges: up to 2097151 KB, or unlimited.
_SIZE = values.byteSize(0, 2097151 * KB, unlimited=True)
_DSN_CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}", re.ASCII)


def domainList(text):
    """
    A comma list of domains (C{contoso.com}, C{*.contoso.com}), each once.
    """
    domains = []
    for item in values.commaList(text):
        domain = values.domain(item)
        if domain not in domains:
            domains.append(domain)
    return tuple(domains)


def dsnCodes(text):
    """
    A comma list of enhanced status codes (C{5.4.8, 5.2.4}).
    """
    codes = []
    for item in values.commaList(text):
        if not _DSN_CODE.fullmatch(item):
            raise ValueError(f"{item!r} is not an enhanced status code, e.g. 5.4.8")
        if item not in codes:
            codes.append(item)
    return tuple(codes)


def address(text):
    """
    An SMTP address (C{postmaster@fabrikam.com}, also C{SMTP:}-prefixed).
    """
    stripped = text.strip()
    if stripped.lower().startswith("smtp:"):
        stripped = stripped[5:]
    local, at, domain = stripped.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{text!r} is not an e-mail address")
    return f"{local}@{values.fqdn(domain).lower()}"


TRANSPORT_CONFIG_KEYS = {
    "MaxReceiveSize": (_SIZE, 10 * MB),
    "MaxSendSize": (_SIZE, 10 * MB),
    "MaxRecipientEnvelopeLimit": (values.integer(0, 2**31 - 1, unlimited=True), 5000),
    "TLSReceiveDomainSecureList": (domainList, ()),
    "TLSSendDomainSecureList": (domainList, ()),
    "ExternalPostmasterAddress": (address, None),
    "GenerateCopyOfDSNFor": (dsnCodes, DEFAULT_DSN_COPIES),
    # Exchange 2010's ranges and defaults (Set-TransportConfig).
    "ShadowRedundancyEnabled": (values.boolean, True),
    "ShadowHeartbeatTimeoutInterval": (values.timespan(1, 86400), 15 * 60),
    "ShadowHeartbeatRetryCount": (values.integer(1, 15), 3),
    "ShadowMessageAutoDiscardInterval": (values.timespan(5, 90 * 86400), 2 * 86400),
    "MaxAcknowledgementDelay": (values.timespan(0, 600), 30),
    "Comment": (str, None),
}


def transportConfig(readers):
    """
    @param readers: one C{_Reader} per C{[TransportConfig]} section.
    @return: the L{TransportConfig}.
    @raise ConfigError: for a second section or a named one.
    """
    if not readers:
        return TransportConfig()
    first = readers[0]
    for reader in readers:
        if reader.section.name:
            raise reader.error(
                "[TransportConfig] takes no name: the organization has one TransportConfig"
            )
        if reader is not first:
            raise reader.error(
                f"a second [TransportConfig] section (the first is on line {first.section.line}); "
                "the organization has one"
            )
    return TransportConfig(
        maxReceiveSize=first["MaxReceiveSize"],
        maxSendSize=first["MaxSendSize"],
        maxRecipientEnvelopeLimit=first["MaxRecipientEnvelopeLimit"],
        tlsReceiveDomainSecureList=first["TLSReceiveDomainSecureList"],
        tlsSendDomainSecureList=first["TLSSendDomainSecureList"],
        externalPostmasterAddress=first["ExternalPostmasterAddress"],
        generateCopyOfDSNFor=first["GenerateCopyOfDSNFor"],
        shadowRedundancyEnabled=first["ShadowRedundancyEnabled"],
        shadowHeartbeatTimeoutInterval=first["ShadowHeartbeatTimeoutInterval"],
        shadowHeartbeatRetryCount=first["ShadowHeartbeatRetryCount"],
        shadowMessageAutoDiscardInterval=first["ShadowMessageAutoDiscardInterval"],
        maxAcknowledgementDelay=first["MaxAcknowledgementDelay"],
        origin=first.origin,
    )
