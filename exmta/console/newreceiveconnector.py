"""
The New Receive Connector wizard (New-ReceiveConnector), with the EMC
2010 pages: Introduction (name, intended use), Local network settings
(bindings, the FQDN given in answer to HELO and EHLO), Remote network
settings (RemoteIPRanges), the summary and the completion page.

The intended use is the Shell's -Usage, which sets the connector's
defaults (permission groups, authentication); as in the EMC, a use that
fixes the local bindings (Internal, Client) or the remote addresses
(Internet) skips the page that would set them, and the command leaves
the parameter out, as the Shell requires.
"""

from twisted.web.template import tags

from exmta.console.fields import defaultButton
from exmta.console.page import Bare, command
from exmta.console.receiveconnectors import BINDINGS, FQDN_LABEL, REMOTE_IP_RANGES
from exmta.console.wizard import Wizard, WizardPage, choice, field

USAGES = (
    ("Custom", "Custom. Select this option to create a Receive connector for other scenarios."),
    ("Internet", "Internet. Select this option to create a Receive connector that receives "
     "e-mail from the Internet."),
    ("Internal", "Internal. Select this option to create a Receive connector that receives "
     "e-mail from Hub Transport servers in a different forest or from Edge Transport servers."),
    ("Client", "Client. Select this option to create a Receive connector that receives e-mail "
     "from Exchange users."),
    ("Partner", "Partner. Select this option to create a Receive connector that receives "
     "secured e-mail from partner domains."),
)

# The uses whose local bindings, or remote addresses, the Shell fixes.
FIXED_BINDINGS = {"Internal": "0.0.0.0:25", "Client": "0.0.0.0:587"}
FIXED_REMOTE = {"Internet"}

ALL_IPV4 = "0.0.0.0:25"
ALL_RANGES = "0.0.0.0-255.255.255.255"


class _Introduction(WizardPage):
    title = "Introduction"
    fields = ("Name", "Usage")

    def render(self, context, state, errors):
        return [
            tags.p("This wizard helps you create a new Receive connector on server ",
                   tags.strong(state["Server"]), "."),
            field("Name", "Name:", state.get("Name"), errors, size="40"),
            choice("Usage", "Select the intended use for this Receive connector:", USAGES,
                   state.get("Usage"), errors),
        ]

    def read(self, context, state, action):
        state["Name"] = context.arg("Name").strip()
        usage = context.arg("Usage")
        state["Usage"] = usage if usage in dict(USAGES) else "Custom"
        if action == "next" and not state["Name"]:
            return {"Name": "Enter a value."}
        return {}


class _LocalNetwork(WizardPage):
    title = "Local Network settings"
    fields = ("Bindings", "Fqdn")

    def shown(self, state):
        return state["Usage"] not in FIXED_BINDINGS

    def render(self, context, state, errors):
        return [
            defaultButton("next", "Next"),
            tags.p("All Available IPv4 is ", tags.code(ALL_IPV4),
                   "; a binding is an IP address of this server and a port."),
            BINDINGS.render(context, state["Bindings"], errors),
            field("Fqdn", FQDN_LABEL, state.get("Fqdn"), errors, size="40"),
        ]

    def read(self, context, state, action):
        state["Bindings"] = BINDINGS.read(context, action)
        state["Fqdn"] = context.arg("Fqdn").strip()
        if action == "next" and not state["Bindings"]:
            return {"Bindings": "Add at least one binding."}
        return {}


class _RemoteNetwork(WizardPage):
    title = "Remote Network settings"
    fields = ("RemoteIPRanges",)

    def shown(self, state):
        return state["Usage"] not in FIXED_REMOTE

    def render(self, context, state, errors):
        return [
            defaultButton("next", "Next"),
            tags.p("An entry is an address (192.168.5.77), a range (192.168.5.1-192.168.5.99) "
                   "or a network (192.168.5.0/24)."),
            REMOTE_IP_RANGES.render(context, state["RemoteIPRanges"], errors),
        ]

    def read(self, context, state, action):
        state["RemoteIPRanges"] = REMOTE_IP_RANGES.read(context, action)
        if action == "next" and not state["RemoteIPRanges"]:
            return {"RemoteIPRanges": "Add at least one IP address or range."}
        return {}


class NewReceiveConnector(Wizard):
    path = "new-receiveconnector"
    title = "New Receive Connector"
    pages = (_Introduction(), _LocalNetwork(), _RemoteNetwork())

    def initialState(self, context, rest):
        if len(rest) != 1 or not rest[0]:
            return None
        return {
            "Server": rest[0],
            "Name": "",
            "Usage": "Custom",
            "Bindings": [ALL_IPV4],
            "Fqdn": "",
            "RemoteIPRanges": [ALL_RANGES],
        }

    def command(self, state):
        """
        @return: the Shell line, written as the reference document writes
            it: C{New-ReceiveConnector -Name 'FromInternetGateway' -Server
            HubA -Usage Custom -Bindings 10.2.3.4:25 -RemoteIPRanges
            192.168.5.77}.
        """
        local = self.pages[1].shown(state)
        remote = self.pages[2].shown(state)
        return command(
            "New-ReceiveConnector",
            Name=state["Name"],
            Server=Bare(state["Server"]),
            Usage=Bare(state["Usage"]),
            Bindings=[Bare(b) for b in state["Bindings"]] if local else None,
            RemoteIPRanges=[Bare(r) for r in state["RemoteIPRanges"]] if remote else None,
            Fqdn=Bare(state["Fqdn"]) if local and state["Fqdn"] else None,
        )

    def completed(self, context, state):
        server, name = state["Server"], state["Name"]
        return (
            tags.p(
                tags.a(f"Hub Transport: {server}", href=context.url("hubtransport", server),
                       id="back-to-server"),
                " ",
                tags.a("Properties of the new connector",
                       href=context.url("receiveconnector", server, name), id="properties"),
            ),
        )


NEW = NewReceiveConnector()

ROUTES = NEW.routes()
