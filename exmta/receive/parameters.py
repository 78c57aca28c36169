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

from exmta.envelope import Reply
from exmta.message import dsnparams
from exmta.receive.data import TOO_BIG


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
