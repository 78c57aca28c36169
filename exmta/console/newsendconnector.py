"""
Organization Configuration > Hub Transport > New Send Connector: EMC
2010's wizard (Introduction, Address space, Network settings, Smart host
security, Source Server, New Connector, Completion), which runs
New-SendConnector.

The EMC adds, edits and removes address spaces and smart hosts in small
dialogs; here each row's Edit and Remove, and Add, are buttons of the
wizard's page, and the dialog is the page showing only that row's fields
until OK or Cancel.  The user name and password of Basic Authentication
stay in the session: the command reads them from C{$CredentialObject =
Get-Credential}.
"""

from twisted.web.template import tags

from exmta.console.page import Bare
from exmta.console.sendconnectorparts import (
    ADDRESS_SPACE_HEADINGS,
    CREDENTIAL,
    USAGES,
    addressSpaceCells,
    addressSpaceText,
    authenticationFields,
    mechanismOf,
    radio,
    readAuthentication,
    shellCommand,
)
from exmta.console.wizard import Wizard, WizardPage, checkbox, choice, field, fieldError


class _Rows:
    """
    A list of rows a page adds, edits and removes one at a time.

    A kind of rows defines C{cells(row)} (the list's cells for a row),
    C{editor(row, errors)} (the fields of the row's dialog),
    C{readRow(context)} (the row typed in the dialog, and {field: what is
    wrong}) and C{blank()} (a new row's values).

    @cvar key: where the rows are kept in the wizard's state, and the Shell
        parameter they become (whose refusal is shown beside the list).
    @cvar noun: what a row is (C{"address space"}).
    @cvar headings: the list's column headings.
    """

    key = ""
    noun = ""
    headings = ()

    def editing(self, state):
        return (state.get("editing") or [None])[0] == self.key

    def handle(self, context, state, action):
        """
        Act on the page's button C{action} for these rows.

        @return: {field: message} to show the page again with (empty when
            nothing is wrong), or L{None} when the button is not one of
            these rows' (the page reads its other fields then).
        """
        rows = state[self.key]
        if self.editing(state):
            index = state["editing"][1]
            if action in (f"ok-{self.key}", "next"):
                row, errors = self.readRow(context)
                if errors:
                    state["draft"] = row
                    return errors
                if index is None:
                    rows.append(row)
                else:
                    rows[index] = row
            state["editing"] = state["draft"] = None
            return {}
        if action == f"add-{self.key}":
            state["editing"], state["draft"] = [self.key, None], self.blank()
            return {}
        verb, _, number = action.rpartition("-")
        if number.isdigit() and int(number) < len(rows):
            if verb == f"edit-{self.key}":
                state["editing"], state["draft"] = [self.key, int(number)], rows[int(number)]
                return {}
            if verb == f"remove-{self.key}":
                del rows[int(number)]
                return {}
        return None

    def render(self, state, errors):
        if self.editing(state):
            index = state["editing"][1]
            return [
                tags.h3(("Add " if index is None else "Edit ") + self.noun, id="dialog"),
                *self.editor(state["draft"], errors),
                # OK comes first, so that Enter in a field means OK.
                tags.p(class_="buttons")(
                    tags.button("OK", type="submit", name="action", value=f"ok-{self.key}",
                                id="ok"),
                    tags.button("Cancel", type="submit", name="action",
                                value=f"discard-{self.key}", id="discard"),
                ),
            ]
        rows = [
            tags.tr(
                *(tags.td(cell) for cell in self.cells(row)),
                tags.td(
                    tags.button("Edit...", type="submit", name="action",
                                value=f"edit-{self.key}-{index}", class_="edit"),
                    " ",
                    tags.button("Remove", type="submit", name="action",
                                value=f"remove-{self.key}-{index}", class_="remove"),
                ),
            )
            for index, row in enumerate(state[self.key])
        ]
        return [
            tags.p(tags.button("Add...", type="submit", name="action", value=f"add-{self.key}",
                               id=f"add-{self.key}")),
            tags.table(id=self.key)(
                tags.tr(*(tags.th(heading) for heading in self.headings), tags.th("")),
                *rows,
            ),
            fieldError(self.key, errors),
        ]


class _AddressSpaceRows(_Rows):
    key = "AddressSpaces"
    noun = "SMTP address space"
    headings = ADDRESS_SPACE_HEADINGS

    def cells(self, row):
        return addressSpaceCells(row)

    def blank(self):
        return {"Type": "SMTP", "Address": "", "Cost": "1", "IncludeSubdomains": False}

    def editor(self, row, errors):
        return [
            field("Address", "Address:", row["Address"], errors),
            checkbox("IncludeSubdomains", "Include all subdomains", row["IncludeSubdomains"]),
            field("Cost", "Cost:", row["Cost"], errors, size="4"),
        ]

    def readRow(self, context):
        row = {
            "Type": "SMTP",
            "Address": context.arg("Address").strip(),
            "Cost": context.arg("Cost").strip() or "1",
            "IncludeSubdomains": context.arg("IncludeSubdomains") == "true",
        }
        return row, {} if row["Address"] else {"Address": "Enter an address space, e.g. *."}


class _SmartHostRows(_Rows):
    key = "SmartHosts"
    noun = "smart host"
    headings = ("Smart host",)

    def cells(self, row):
        return (row["SmartHost"],)

    def blank(self):
        return {"SmartHost": ""}

    def editor(self, row, errors):
        return [
            field("SmartHost", "IP address or fully qualified domain name (FQDN):",
                  row["SmartHost"], errors),
        ]

    def readRow(self, context):
        row = {"SmartHost": context.arg("SmartHost").strip()}
        return row, {} if row["SmartHost"] else {"SmartHost": "Enter an IP address or FQDN."}


class _Introduction(WizardPage):
    title = "Introduction"
    fields = ("Name", "Usage")

    def render(self, context, state, errors):
        return [
            tags.p("This wizard helps you create a new Send connector."),
            field("Name", "Name:", state["Name"], errors, size="40"),
            choice("Usage", "Select the intended use for this Send connector:", USAGES,
                   state["Usage"], errors),
        ]

    def read(self, context, state, action):
        state["Name"] = context.arg("Name").strip()
        state["Usage"] = context.arg("Usage", "Custom")
        if action == "next" and not state["Name"]:
            return {"Name": "Enter a name for the Send connector."}
        return {}


class _AddressSpace(WizardPage):
    title = "Address space"
    fields = ("AddressSpaces",)
    rows = _AddressSpaceRows()

    def render(self, context, state, errors):
        return [
            tags.p("Specify the address space(s) to which this connector will route mail:"),
            *self.rows.render(state, errors),
        ]

    def read(self, context, state, action):
        errors = self.rows.handle(context, state, action)
        if errors is None:
            errors = {}
        if not errors and action == "next" and not state["AddressSpaces"]:
            return {"AddressSpaces": "Add at least one address space."}
        return errors


class _NetworkSettings(WizardPage):
    title = "Network settings"
    fields = ("DNSRoutingEnabled", "SmartHosts", "UseExternalDNSServersEnabled")
    rows = _SmartHostRows()

    def render(self, context, state, errors):
        if self.rows.editing(state):
            return self.rows.render(state, errors)
        dns = [
            checkbox("UseExternalDNSServersEnabled",
                     "Use the External DNS Lookup settings on the transport server",
                     state["UseExternalDNSServersEnabled"], errors),
        ]
        return [
            tags.p("Select how to send mail with this connector:"),
            *radio(
                "DNSRoutingEnabled",
                [
                    ("true", 'Use domain name system (DNS) "MX" records to route mail '
                     "automatically", *dns),
                    ("false", "Route mail through the following smart hosts:",
                     *self.rows.render(state, errors)),
                ],
                "true" if state["DNSRoutingEnabled"] else "false",
                errors,
            ),
        ]

    def read(self, context, state, action):
        if self.rows.editing(state):
            return self.rows.handle(context, state, action)
        state["DNSRoutingEnabled"] = context.arg("DNSRoutingEnabled", "true") != "false"
        state["UseExternalDNSServersEnabled"] = context.arg("UseExternalDNSServersEnabled") == "true"
        errors = self.rows.handle(context, state, action)
        if errors is None:
            errors = {}
        if not errors and action == "next" and not state["DNSRoutingEnabled"]:
            if not state["SmartHosts"]:
                return {"SmartHosts": "Add at least one smart host."}
        return errors


class _SmartHostSecurity(WizardPage):
    title = "Smart host security"
    fields = (
        "SmartHostAuthMechanism",
        "AuthenticationCredential",
        "UserName",
        "Password",
        "BasicAuthRequireTLS",
    )

    def shown(self, state):
        # As in the EMC: a connector routing by DNS MX records has no
        # smart host to authenticate to.
        return not state["DNSRoutingEnabled"]

    def render(self, context, state, errors):
        entered = ""
        if state.get("Password"):
            entered = tags.p("A password has been entered; type it again only to change it.",
                             id="password-entered")
        return [
            tags.p("Configure smart host authentication settings:"),
            *authenticationFields(state, errors),
            entered,
        ]

    def read(self, context, state, action):
        readAuthentication(context, state)
        if action != "next" or state["SmartHostAuthMechanism"] != "BasicAuth":
            return {}
        errors = {}
        if not state["UserName"]:
            errors["UserName"] = "Enter the user name the smart host takes."
        if not state.get("Password"):
            errors["Password"] = "Enter the password."
        return errors


class _SourceServer(WizardPage):
    title = "Source Server"
    fields = ("SourceTransportServers",)

    def render(self, context, state, errors):
        chosen = state["SourceTransportServers"]
        rows = [
            tags.tr(
                tags.td(server),
                tags.td(tags.button("Remove", type="submit", name="action",
                                    value=f"remove-server-{index}", class_="remove")),
            )
            for index, server in enumerate(chosen)
        ]
        others = [server for server in state["servers"] if server not in chosen]
        add = ""
        if others:
            add = tags.p(
                tags.label("Hub Transport server: ", tags.select(name="Server", id="Server")(
                    *(tags.option(server, value=server) for server in others)
                )),
                " ",
                tags.button("Add", type="submit", name="action", value="add-server",
                            id="add-server"),
            )
        return [
            tags.p("Associate this connector with the following Hub Transport servers:"),
            add,
            tags.table(id="SourceTransportServers")(tags.tr(tags.th("Name"), tags.th("")), *rows),
            fieldError("SourceTransportServers", errors),
        ]

    def read(self, context, state, action):
        chosen = state["SourceTransportServers"]
        server = context.arg("Server")
        if action == "add-server" and server in state["servers"] and server not in chosen:
            chosen.append(server)
        verb, _, number = action.rpartition("-")
        if verb == "remove-server" and number.isdigit() and int(number) < len(chosen):
            del chosen[int(number)]
        if action == "next" and not chosen:
            return {"SourceTransportServers": "Add at least one source server."}
        return {}


class NewSendConnector(Wizard):
    path = "new-sendconnector"
    title = "New Send Connector"
    summaryTitle = "New Connector"
    pages = (
        _Introduction(),
        _AddressSpace(),
        _NetworkSettings(),
        _SmartHostSecurity(),
        _SourceServer(),
    )

    def start(self, context, rest):
        # The Source Server page offers the organization's transport servers.
        def started(servers):
            context.transportServers = [server.Name for server in servers]
            return Wizard.start(self, context, rest)

        return context.invoke("Get-TransportServer").addCallback(started)

    def initialState(self, context, rest):
        if rest:
            return None
        return {
            "Name": "",
            "Usage": "Custom",
            "AddressSpaces": [],
            "DNSRoutingEnabled": True,
            "UseExternalDNSServersEnabled": False,
            "SmartHosts": [],
            "SmartHostAuthMechanism": "None",
            "BasicAuthRequireTLS": False,
            "UserName": "",
            "SourceTransportServers": [],
            "servers": context.transportServers,
            "editing": None,
            "draft": None,
        }

    def _basic(self, state):
        return not state["DNSRoutingEnabled"] and state["SmartHostAuthMechanism"] == "BasicAuth"

    def command(self, state):
        """
        @return: New-SendConnector with the parameters in the reference
            document's order: the smart hosts and their authentication,
            then the source servers and DNSRoutingEnabled.
        """
        parameters = {
            "Name": state["Name"],
            "Usage": None if state["Usage"] == "Custom" else Bare(state["Usage"]),
            "AddressSpaces": [addressSpaceText(row) for row in state["AddressSpaces"]],
        }
        if not state["DNSRoutingEnabled"]:
            parameters["SmartHosts"] = [row["SmartHost"] for row in state["SmartHosts"]]
            parameters["SmartHostAuthMechanism"] = mechanismOf(
                state["SmartHostAuthMechanism"], state["BasicAuthRequireTLS"]
            )
            if self._basic(state):
                parameters["AuthenticationCredential"] = CREDENTIAL
        parameters["SourceTransportServers"] = state["SourceTransportServers"]
        parameters["DNSRoutingEnabled"] = state["DNSRoutingEnabled"]
        if state["DNSRoutingEnabled"] and state["UseExternalDNSServersEnabled"]:
            parameters["UseExternalDNSServersEnabled"] = True
        return shellCommand("New-SendConnector", **parameters)

    def answers(self, state):
        if self._basic(state):
            return (state["UserName"], state.get("Password", ""))
        return ()

    def completed(self, context, state):
        return (tags.p(tags.a("Send Connectors", href=context.url("sendconnectors"), id="connectors")),)


NEW = NewSendConnector()
