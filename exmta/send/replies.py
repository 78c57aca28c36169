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


def _reclassed(failure, kind, code):
    reply = failure.reply
    status = f"{str(code)[0]}{reply.status[1:]}" if reply.status else ""
    changed = kind(Reply(code, status, reply.text))
    changed.remoteMta = getattr(failure, "remoteMta", None)
    return changed


def _isCustom(reply):
    """
    Whether a reply says no more than its class: no enhanced status code,
    or an undefined one (X.0.0).  Exchange's ErrorPolicies call these
    custom failures.
    """
    return not reply.status or reply.status.endswith(".0.0")


def withErrorPolicies(outcome, policies):
    """
    A send connector's ErrorPolicies applied to one recipient's outcome:

      - C{DowngradeDnsFailures}: a domain that DNS says does not exist
        (C{SMTPSEND.DNS.*}) is retried instead of failed (a DNS that
        answers wrongly for a while loses no mail);
      - C{DowngradeCustomFailures}: a custom permanent failure from the
        next hop (L{_isCustom}) is retried;
      - C{UpgradeCustomFailures}: a custom transient failure from the next
        hop fails for good.

    Failures to reach the next hop at all (L{ConnectionFailure}) keep
    their own schedule.  The reply keeps its text; its code and status
    take the new class (550 5.4.4 becomes 450 4.4.4).

    @param policies: the connector's C{errorPolicies} (empty: Default).
    @return: the outcome to settle the recipient with.
    """
    if not policies or outcome is None or not isinstance(outcome, (PermanentFailure, TransientFailure)):
        return outcome
    if isinstance(outcome, ConnectionFailure):
        return outcome
    reply = outcome.reply
    text = " ".join(reply.lines())
    if isinstance(outcome, PermanentFailure):
        if "DowngradeDnsFailures" in policies and text.startswith("SMTPSEND.DNS."):
            return _reclassed(outcome, TransientFailure, reply.code - 100)
        if "DowngradeCustomFailures" in policies and _isCustom(reply):
            return _reclassed(outcome, TransientFailure, reply.code - 100)
    elif "UpgradeCustomFailures" in policies and _isCustom(reply):
        return _reclassed(outcome, PermanentFailure, reply.code + 100)
    return outcome
