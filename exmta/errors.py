"""
The errors exmta raises across its stages.

Configuration problems are L{ConfigError}s that name the place in org.ini;
a plugin refuses a key of its settings with a L{SettingError}.
SMTP outcomes are L{PermanentFailure} (5xx) and L{TransientFailure} (4xx),
each carrying the full reply; the receive protocol turns them into replies
and the send side will turn remote replies into them.
"""

from exmta.envelope import Reply


class ConfigError(Exception):
    """
    org.ini (or a file it points to) says something exmta cannot use.

    @ivar path: the file.
    @ivar line: the line number, or L{None} when the problem has no line.
    @ivar section: the section header as written, e.g. C{ReceiveConnector Default HubA}.
    @ivar key: the key, when one key is at fault.
    """

    def __init__(self, message, path=None, line=None, section=None, key=None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.section = section
        self.key = key

    def __str__(self):
        where = str(self.path) if self.path is not None else "configuration"
        if self.line is not None:
            where += f":{self.line}"
        if self.section is not None:
            where += f": [{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
        return f"{where}: {self.message}"


class SettingError(ValueError):
    """
    Raised by a plugin's factory (L{exmta.interfaces.IAgentFactory.makeAgent}
    and the other kinds') for a bad key of its settings, so that the
    L{ConfigError} it becomes points at that key's line.
    """

    def __init__(self, key, message):
        super().__init__(message)
        self.key = key


class SMTPFailure(Exception):
    """
    An outcome that the client must hear as an SMTP reply.
    """

    def __init__(self, reply):
        super().__init__(str(reply))
        self.reply = reply

    @classmethod
    def of(cls, code, status, text):
        return cls(Reply(code, status, text))


class Disconnect(SMTPFailure):
    """
    The client hears the reply and the session ends (a transport agent's
    C{Verdict.disconnect}).
    """


class PermanentFailure(SMTPFailure):
    """
    A 5xx outcome: retrying the same thing will fail the same way.
    """


class TransientFailure(SMTPFailure):
    """
    A 4xx outcome: the same thing may succeed later.
    """


class ConnectionFailure(TransientFailure):
    """
    The next hop could not be reached or refused the session or the DATA
    as a whole (no connection, a 4xx greeting, a 4xx to DATA): every
    recipient of the attempt is retried on the connection-failure schedule
    (TransientFailureRetryInterval, then OutboundConnectionFailureRetryInterval).
    """


# Back pressure's refusal (Exchange's text), and the answer to a message
# the queue had no room for.
INSUFFICIENT_RESOURCES = Reply(452, "4.3.1", "Insufficient system resources")
