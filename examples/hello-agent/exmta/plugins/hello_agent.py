"""
HelloAgent, an example third-party transport agent for exmta.

    [TransportAgent HelloAgent]
    Enabled = $true
    Priority = 5
    Greeting = Hello from Contoso

Every message it sees gets an C{X-Hello: <Greeting>} header, and mail to
the local part C{nobody} (in any domain) is refused at RCPT with 550 5.1.1.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.envelope import Reply
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory, IReceiveAgent

NOBODY_REFUSED = Reply(550, "5.1.1", "Nobody lives here")
DEFAULT_GREETING = "Hello"


@implementer(IReceiveAgent)
class HelloAgent:
    def __init__(self, greeting):
        self.header = f"X-Hello: {greeting}\r\n".encode("utf-8")

    def OnRcptCommand(self, event):
        if event.address.localPart.lower() == "nobody":
            return Verdict.reject(NOBODY_REFUSED)
        return Verdict.continue_()

    def OnEndOfData(self, event):
        return Verdict.continue_(message=addHeader(event.message, self.header))


def addHeader(message, header):
    """
    Put C{header} (one CRLF-terminated field) last in C{message}'s header,
    below the trace fields exmta puts on top.
    """
    end = message.find(b"\r\n\r\n")
    if end == -1:
        return message + header
    return message[: end + 2] + header + message[end + 2 :]


@implementer(IPlugin, IAgentFactory)
class HelloAgentFactory:
    name = "HelloAgent"

    def makeAgent(self, settings, organization, reactor):
        greeting = DEFAULT_GREETING
        for key, value in settings.items():
            if key.lower() != "greeting":
                raise SettingError(key, "unknown key for HelloAgent; its only key is Greeting")
            if not value.strip() or "\r" in value or "\n" in value:
                raise SettingError(key, "Greeting must be one line of text")
            greeting = value.strip()
        return HelloAgent(greeting)


helloAgent = HelloAgentFactory()
