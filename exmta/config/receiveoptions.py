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

RECEIVE_EXTENSION_KEYS = {
    "DeliveryStatusNotificationEnabled": (values.boolean, True),
    "ChunkingEnabled": (values.boolean, True),
    "BinaryMimeEnabled": (values.boolean, True),
    "EightBitMimeEnabled": (values.boolean, True),
    "PipeliningEnabled": (values.boolean, True),
    "EnhancedStatusCodesEnabled": (values.boolean, True),
    "SizeEnabled": (values.choice(SIZE_MODES), "Enabled"),
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
    }
