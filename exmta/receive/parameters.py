"""
The ESMTP parameters of MAIL and RCPT, checked against what a receive
connector offers (L{exmta.config.receiveoptions}): a parameter of an
extension the connector does not offer is refused as an unknown one.

  - MAIL: C{SIZE} (unless SizeEnabled is Disabled), C{BODY} (C{7BIT};
    C{8BITMIME} with EightBitMimeEnabled; C{BINARYMIME} with
    BinaryMimeEnabled), C{AUTH} (advisory, ignored), and with
    DeliveryStatusNotificationEnabled C{RET} and C{ENVID} (RFC 3461).
    C{SMTPUTF8} (RFC 6531, which exmta offers beyond Exchange 2010).
  - RCPT: with DeliveryStatusNotificationEnabled, C{NOTIFY} and C{ORCPT}.
"""

import re

from exmta.envelope import Reply
from exmta.message import dsnparams
from exmta.message.address import AddressError, isHelloDomain, parsePath, withDomain
from exmta.receive.data import TOO_BIG

COMMAND_LINE_LIMIT = 512
# RFC 3461 section 5: with DSN, MAIL lines may be 100 octets longer (RET,
# ENVID) and RCPT lines 500 (NOTIFY, ORCPT).
DSN_LINE_EXTRA = {b"MAIL ": 100, b"RCPT ": 500}
# Exchange's MAIL and RCPT line limit under LongAddressesEnabled (XLONGADDR).
LONG_ADDRESS_LINE_LIMIT = 8000

INVALID_DOMAIN = Reply(501, "5.5.4", "Invalid domain name")
# C0 controls and DEL: a HELO name with one would reach the Received header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def commandLineLimit(connector, start):
    """
    @param connector: the session's receive connector, or L{None}.
    @param start: the first octets of the command line.
    @return: the longest command line (CRLF not counted) taken.
    """
    extra = DSN_LINE_EXTRA.get(bytes(start).upper())
    if extra and connector is not None:
        if connector.longAddressesEnabled:
            return LONG_ADDRESS_LINE_LIMIT
        if connector.deliveryStatusNotificationEnabled:
            return COMMAND_LINE_LIMIT + extra
    return COMMAND_LINE_LIMIT


def helloRefusal(connector, argument):
    """
    @return: the refusal of a HELO or EHLO name, or L{None}: no control
        characters, and with RequireEHLODomain a domain name or an address
        literal.
    """
    if _CONTROL.search(argument):
        return INVALID_DOMAIN
    if connector.requireEHLODomain and not isHelloDomain(argument):
        return INVALID_DOMAIN
    return None


def connectorPath(connector, argument, keyword, allowNull):
    """
    L{parsePath} under a connector's rules: UTF-8 addresses (RFC 6531,
    which the protocol allows only with SMTPUTF8), a path without a domain
    gets the DefaultDomain, and LongAddressesEnabled lifts RFC 5321's
    lengths.

    @raise AddressError: not a path.
    """
    options = {"longAddresses": connector.longAddressesEnabled, "utf8": True}
    try:
        return parsePath(argument, keyword, allowNull, **options)
    except AddressError:
        completed = connector.defaultDomain and withDomain(argument, connector.defaultDomain)
        if not completed:
            raise
        return parsePath(completed, keyword, allowNull, **options)


def ehloKeywords(connector, size, startTls, auth):
    """
    The EHLO keywords, in Exchange's order, of the extensions C{connector}
    has switched on; SMTPUTF8 (RFC 6531, beyond Exchange 2010) is always
    offered.

    @param size: the size limit SIZE announces.
    @param startTls: whether STARTTLS is offered now.
    @param auth: whether AUTH is offered now.
    """
    keywords = []
    if connector.sizeEnabled == "Enabled":
        keywords.append(f"SIZE {size}")
    elif connector.sizeEnabled == "EnabledWithoutValue":
        keywords.append("SIZE")
    switched = [
        (connector.pipeliningEnabled, "PIPELINING"),
        (connector.deliveryStatusNotificationEnabled, "DSN"),
        (connector.enhancedStatusCodesEnabled, "ENHANCEDSTATUSCODES"),
        (startTls, "STARTTLS"),
        (auth, "AUTH PLAIN LOGIN"),
        (connector.eightBitMimeEnabled, "8BITMIME"),
        (connector.binaryMimeEnabled, "BINARYMIME"),
        (connector.chunkingEnabled, "CHUNKING"),
        (True, "SMTPUTF8"),
        (connector.longAddressesEnabled, "XLONGADDR"),
    ]
    return tuple(keywords + [keyword for on, keyword in switched if on])


def unsupported(name):
    return Reply(555, "5.5.4", f"Unsupported parameter {name}")


def invalid(name):
    return Reply(501, "5.5.4", f"Invalid {name} parameter")


def _bodies(connector):
    bodies = ["7BIT"]
    if connector.eightBitMimeEnabled:
        bodies.append("8BITMIME")
    if connector.binaryMimeEnabled:
        bodies.append("BINARYMIME")
    return bodies


def mailParameters(connector, parameters, sizeLimit):
    """
    @param parameters: the MAIL command's {NAME: value or None}.
    @param sizeLimit: the most octets the session may send.
    @return: the L{exmta.envelope.Envelope} fields they give (C{body},
        C{declaredSize}, C{ret}, C{envid}, C{smtputf8}), or the refusal
        L{Reply}.
    """
    fields = {"body": "7BIT", "declaredSize": None, "ret": None, "envid": None, "smtputf8": False}
    dsn = connector.deliveryStatusNotificationEnabled
    for name, value in parameters.items():
        if name == "SIZE" and connector.sizeEnabled != "Disabled":
            if value is None or not value.isdigit():
                return invalid("SIZE")
            fields["declaredSize"] = int(value)
            if fields["declaredSize"] > sizeLimit:
                return TOO_BIG
        elif name == "BODY":
            if value is None:
                return invalid("BODY")
            if value.upper() not in _bodies(connector):
                if value.upper() in ("8BITMIME", "BINARYMIME"):
                    return unsupported(f"BODY={value.upper()}")
                return invalid("BODY")
            fields["body"] = value.upper()
        elif name == "SMTPUTF8":
            if value is not None:
                return invalid("SMTPUTF8")
            fields["smtputf8"] = True
        elif name == "AUTH":
            # RFC 4954 AUTH= is advisory; Exchange ignores it without
            # Accept-Authentication-Flag, and nothing here trusts it.
            continue
        elif name == "RET" and dsn:
            try:
                fields["ret"] = dsnparams.parseRet(value)
            except dsnparams.ParameterError:
                return invalid("RET")
        elif name == "ENVID" and dsn:
            try:
                fields["envid"] = dsnparams.parseEnvid(value)
            except dsnparams.ParameterError:
                return invalid("ENVID")
        else:
            return unsupported(name)
    return fields


def rcptParameters(connector, parameters):
    """
    @param parameters: the RCPT command's {NAME: value or None}.
    @return: (NOTIFY, ORCPT), each L{None} when not given, or the refusal
        L{Reply}.
    """
    notify = orcpt = None
    dsn = connector.deliveryStatusNotificationEnabled
    for name, value in parameters.items():
        if name == "NOTIFY" and dsn:
            try:
                notify = dsnparams.parseNotify(value)
            except dsnparams.ParameterError:
                return invalid("NOTIFY")
        elif name == "ORCPT" and dsn:
            try:
                orcpt = dsnparams.parseOrcpt(value)
            except dsnparams.ParameterError:
                return invalid("ORCPT")
        else:
            return unsupported(name)
    return notify, orcpt
