"""
The ESMTP parameters of RFC 3461 (delivery status notifications): C{RET}
and C{ENVID} on MAIL, C{NOTIFY} and C{ORCPT} on RCPT, and the xtext
encoding two of them travel in.

Values are kept decoded (an ENVID and an ORCPT address as the sender
meant them) and encoded again when they are passed on to a next hop.
"""

import re

NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")
NEVER = "NEVER"
RETURNS = ("FULL", "HDRS")
# RFC 3461 sections 4.4 and 4.2.
ENVID_LIMIT = 100
ORCPT_LIMIT = 500

_XTEXT_CHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x7e]")
_HEX = re.compile(r"\+([0-9A-F]{2})")
_ADDRESS_TYPE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*)")


class ParameterError(ValueError):
    """
    A DSN parameter's value is not valid.
    """


def decodeXtext(text):
    """
    @return: the text an xtext (RFC 3461 section 4) stands for.
    @raise ParameterError: C{text} is not xtext.
    """
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "+":
            match = _HEX.match(text, index)
            if match is None:
                raise ParameterError(f"{text!r} is not xtext")
            out.append(chr(int(match.group(1), 16)))
            index = match.end()
        elif _XTEXT_CHAR.fullmatch(char):
            out.append(char)
            index += 1
        else:
            raise ParameterError(f"{text!r} is not xtext")
    return "".join(out)


def encodeXtext(text):
    """
    @return: C{text} (ASCII) as xtext: C{+}, C{=} and what is not printable
        become C{+XX}.
    """
    return "".join(
        char if _XTEXT_CHAR.fullmatch(char) else f"+{ord(char):02X}"
        for char in text.encode("ascii", "backslashreplace").decode("ascii")
    )


def parseNotify(value):
    """
    @return: C{NEVER}, or the keywords asked for, comma-separated in
        L{NOTIFY_KEYWORDS} order.
    @raise ParameterError: not C{NEVER} alone nor a list of those keywords.
    """
    if not value:
        raise ParameterError("NOTIFY needs a value")
    keywords = [keyword.upper() for keyword in value.split(",")]
    if keywords == [NEVER]:
        return NEVER
    if not keywords or any(k not in NOTIFY_KEYWORDS for k in keywords) or len(set(keywords)) != len(keywords):
        raise ParameterError("NOTIFY takes NEVER, or SUCCESS, FAILURE and DELAY")
    return ",".join(k for k in NOTIFY_KEYWORDS if k in keywords)


def parseRet(value):
    """
    @return: C{FULL} or C{HDRS}.
    @raise ParameterError: anything else.
    """
    if value is None or value.upper() not in RETURNS:
        raise ParameterError("RET takes FULL or HDRS")
    return value.upper()


def parseEnvid(value):
    """
    @return: the envelope identifier, decoded.
    @raise ParameterError: not xtext, or longer than 100 characters.
    """
    if not value or len(value) > ENVID_LIMIT:
        raise ParameterError("ENVID takes 1 to 100 characters of xtext")
    return decodeXtext(value)


def parseOrcpt(value):
    """
    @return: C{addr-type;address}, the address decoded.
    @raise ParameterError: not C{addr-type;xtext}, or too long.
    """
    if not value or len(value) > ORCPT_LIMIT:
        raise ParameterError("ORCPT takes addr-type;xtext")
    kind, semicolon, address = value.partition(";")
    if not semicolon or not address or not _ADDRESS_TYPE.fullmatch(kind):
        raise ParameterError("ORCPT takes addr-type;xtext, e.g. rfc822;kim@contoso.com")
    return f"{kind.lower()};{decodeXtext(address)}"


def formatOrcpt(orcpt):
    """
    @return: an ORCPT value kept by L{parseOrcpt} as a next hop is sent it.
    """
    kind, _, address = orcpt.partition(";")
    return f"{kind};{encodeXtext(address)}"


def notifies(notify, keyword):
    """
    Whether a recipient whose C{NOTIFY} was C{notify} (L{None}: not given)
    is to be told of C{keyword} (C{SUCCESS}, C{FAILURE} or C{DELAY}).
    Without NOTIFY a sender hears of failures and delays (RFC 3461 section
    4.1), never of success.
    """
    if notify is None:
        return keyword != "SUCCESS"
    return keyword in notify.split(",")
