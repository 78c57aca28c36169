"""
The ESMTP extensions of a receive connector and the Exchange 2010
parameters that turn them on and off (New-/Set-ReceiveConnector), read
from its C{[ReceiveConnector Name]} section like the other keys
(L{exmta.config.organization} merges L{RECEIVE_EXTENSION_KEYS} into its
schema).  Each switch shows or hides a keyword of the EHLO reply; the
protocol (L{exmta.receive.protocol}) refuses what a hidden keyword
announces.

Parameters that name a Windows-only mechanism are accepted with their
Exchange default, so scripts that set the default run; any other value
is refused with the reason (L{UNSUPPORTED_RECEIVE_PARAMETERS}).
"""

from exmta.config import values

SIZE_MODES = ("Enabled", "Disabled", "EnabledWithoutValue")
MESSAGE_RATE_SOURCES = ("None", "User", "IPAddress", "All")
DAY = 86400

RECEIVE_EXTENSION_KEYS = {
    "DeliveryStatusNotificationEnabled": (values.boolean, True),
    "ChunkingEnabled": (values.boolean, True),
    "BinaryMimeEnabled": (values.boolean, True),
    "EightBitMimeEnabled": (values.boolean, True),
    "PipeliningEnabled": (values.boolean, True),
    "EnhancedStatusCodesEnabled": (values.boolean, True),
    "SizeEnabled": (values.choice(SIZE_MODES), "Enabled"),
    "LongAddressesEnabled": (values.boolean, False),
    # exmta never offers X-ANONYMOUSTLS (Exchange's server-to-server
    # handshake), so either value holds.
    "SuppressXAnonymousTls": (values.boolean, False),
    # Session rules.
    "TarpitInterval": (values.timespan(0, 10 * 60), 5),
    "MessageRateLimit": (values.integer(1, 2**31 - 1, unlimited=True), None),
    "MessageRateSource": (values.choice(MESSAGE_RATE_SOURCES), "IPAddress"),
    "RequireEHLODomain": (values.boolean, False),
    "DefaultDomain": (values.domain, None),
    "MaxLocalHopCount": (values.integer(0, 50), 8),
    "MaxInboundConnectionPercentagePerSource": (values.integer(1, 100), 2),
}

# Parameter -> (Exchange's default as org.ini writes it, why exmta has no more).
UNSUPPORTED_RECEIVE_PARAMETERS = {
    "EnableAuthGSSAPI": (
        "$false",
        "Kerberos (GSSAPI) logons need an Active Directory domain; exmta authenticates "
        "with BasicAuth against its own account store and credential checkers",
    ),
    "ExtendedProtectionPolicy": (
        "None",
        "Extended Protection for Authentication binds Windows Integrated logons to the "
        "TLS channel; exmta has no Integrated (NTLM/Kerberos) logon",
    ),
    "ExtendedProtectionTlsTerminatedAtProxyScenario": (
        "$false",
        "Extended Protection for Authentication binds Windows Integrated logons to the "
        "TLS channel; exmta has no Integrated (NTLM/Kerberos) logon",
    ),
    "ExtendedProtectionSPNList": (
        "$null",
        "Extended Protection for Authentication binds Windows Integrated logons to the "
        "TLS channel; exmta has no Integrated (NTLM/Kerberos) logon",
    ),
    "OrarEnabled": (
        "$false",
        "XORAR (Originator Requested Alternate Recipient) redirects mail between "
        "X.400 systems; exmta has no X.400 addresses",
    ),
    "MaxAcknowledgementDelay": (
        "00:00:30",
        "it delays the acknowledgement for shadow redundancy between Exchange servers; "
        "exmta acknowledges once the message is on disk (fsync) and keeps no shadow copies",
    ),
    "DomainSecureEnabled": (
        "$false",
        "mutual TLS with the domains of Set-TransportConfig's TLSReceiveDomainSecureList "
        "is not implemented yet: exmta asks no client for a certificate",
    ),
    "DomainController": (
        "$null",
        "exmta keeps its configuration in org.ini, not in Active Directory: there is no "
        "domain controller to read it from",
    ),
}


def unsupportedKeys(table):
    """
    @return: org.ini keys for the parameters of C{table}: each takes only
        its Exchange default.
    """
    return {
        name: (values.onlyDefault(default, why), None) for name, (default, why) in table.items()
    }


def receiveOptions(reader):
    """
    @param reader: the C{_Reader} of a C{[ReceiveConnector]} section.
    @return: the L{exmta.config.model.ReceiveConnector} fields these keys
        give, by name.
    @raise ConfigError: a rule between them is broken.
    """
    if reader["BinaryMimeEnabled"] and not reader["ChunkingEnabled"]:
        if "BinaryMimeEnabled" in reader.given:
            raise reader.error(
                "BINARYMIME needs CHUNKING: set ChunkingEnabled = $true or "
                "BinaryMimeEnabled = $false",
                "BinaryMimeEnabled",
            )
    return {
        "deliveryStatusNotificationEnabled": reader["DeliveryStatusNotificationEnabled"],
        "chunkingEnabled": reader["ChunkingEnabled"],
        # Turning CHUNKING off takes BINARYMIME with it, as in Exchange.
        "binaryMimeEnabled": reader["BinaryMimeEnabled"] and reader["ChunkingEnabled"],
        "eightBitMimeEnabled": reader["EightBitMimeEnabled"],
        "pipeliningEnabled": reader["PipeliningEnabled"],
        "enhancedStatusCodesEnabled": reader["EnhancedStatusCodesEnabled"],
        "sizeEnabled": reader["SizeEnabled"],
        "longAddressesEnabled": reader["LongAddressesEnabled"],
        "suppressXAnonymousTls": reader["SuppressXAnonymousTls"],
        "tarpitInterval": reader["TarpitInterval"],
        "messageRateLimit": reader["MessageRateLimit"],
        "messageRateSource": reader["MessageRateSource"],
        "requireEHLODomain": reader["RequireEHLODomain"],
        "defaultDomain": reader["DefaultDomain"],
        "maxLocalHopCount": reader["MaxLocalHopCount"],
        "maxInboundConnectionPercentagePerSource": reader["MaxInboundConnectionPercentagePerSource"],
    }
