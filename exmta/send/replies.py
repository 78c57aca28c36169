"""
The second border where errors are translated: a remote server's reply
read into an L{exmta.envelope.Reply} with its enhanced status code, and
made the outcome of a recipient or a connection (L{PermanentFailure},
L{TransientFailure}, L{ConnectionFailure}).  The SMTP client of the send
connectors and the LMTP delivery agent read replies with it.
"""

import re

from exmta.envelope import Reply
from exmta.errors import ConnectionFailure, PermanentFailure, TransientFailure

_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def parseReply(code, text):
    """
    @param code: the reply code.
    @param text: the reply's text, lines joined by C{\\n} (as
        L{SMTPClient.lineReceived} gives them), bytes or str.
    @return: a L{Reply}, with the RFC 3463 enhanced status code taken off
        the text when it is there and of the reply's class.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.split("\n") if text else [""]
    status = ""
    match = _STATUS.match(lines[0])
    if match and code > 0 and match.group(1) == str(code)[0]:
        status = ".".join(match.groups())
        stripped = []
        for line in lines:
            found = _STATUS.match(line)
            if found and ".".join(found.groups()) == status:
                line = line[found.end():]
            stripped.append(line)
        lines = stripped
    return Reply(code, status, lines[0] if len(lines) == 1 else tuple(lines))


def outcomeOf(reply, remoteMta):
    """
    @param remoteMta: the name of the host that answered, or L{None}.
    @return: L{None} for a 2xx reply, else the L{PermanentFailure} (5xx) or
        L{TransientFailure} carrying it, with C{remoteMta} set (what a DSN's
        Remote-MTA field names).
    """
    if 200 <= reply.code < 300:
        return None
    failure = (PermanentFailure if 500 <= reply.code < 600 else TransientFailure)(reply)
    failure.remoteMta = remoteMta
    return failure


def connectionFailure(reply, remoteMta=None):
    failure = ConnectionFailure(reply)
    failure.remoteMta = remoteMta
    return failure
