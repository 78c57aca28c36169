"""
A send connector's properties, as the EMC's dialog and its tabs: General
(name, enabled, protocol logging level, FQDN, maximum message size,
comment), Address Space, Network (DNS or smart hosts, TLS, smart host
authentication and its credential) and Source Server, each a form at
C{sendconnector/NAME/TAB}.

OK runs Set-SendConnector with the parameters whose value the form
changed, and nothing else, and shows the command that ran; when the Shell
refuses, the tab comes back as it was typed with the Shell's words beside
the field.  Rows of the lists are edited in place, with a blank row to
add one and a Remove box on each.
"""

from twisted.web.template import tags

from exmta.console.page import Bare, completion, quote
from exmta.console.sendconnectorparts import (
    ADDRESS_SPACE_HEADINGS,
    CREDENTIAL,
    NULL,
    addressSpaceRow,
    addressSpaceText,
    authenticationFields,
    choiceOf,
    mechanismOf,
    radio,
    readAuthentication,
    shellCommand,
)
from exmta.console.wizard import checkbox, choice, field, fieldError, fieldOf, shellMessage

TABS = (
    ("general", "General"),
    ("addressspace", "Address Space"),
    ("network", "Network"),
    ("sourceserver", "Source Server"),
)
LOGGING_LEVELS = (("None", "None"), ("Verbose", "Verbose"))


def read(context, name, found):
    """
    Call C{found} with the connectors Get-SendConnector NAME outputs, or
    answer 404 with the Shell's words.
    """

    def missing(failure):
        return context.refuse(404, shellMessage(failure))

    return context.invoke(f"Get-SendConnector {quote(name)}").addCallbacks(found, missing)


def show(context, name, tab):
    if tab not in dict(TABS):
        return context.refuse(404, "There is no such page.")

    def found(connectors):
        connector = connectors[0]
        return _withServers(
            context, tab, lambda servers: _render(context, connector, tab,
                                                  _FROM_VIEW[tab](connector), servers, {})
        )

    return read(context, name, found)


def save(context, name, tab):
    if tab not in dict(TABS):
        return context.refuse(404, "There is no such page.")

    def found(connectors):
        connector = connectors[0]
        return _withServers(context, tab, lambda servers: _save(context, connector, tab, servers))

    return read(context, name, found)


def _withServers(context, tab, then):
    # Only the Source Server tab lists the organization's transport servers.
    if tab != "sourceserver":
        return then(())
    return context.invoke("Get-TransportServer").addCallback(
        lambda servers: then([server.Name for server in servers])
    )


def _save(context, connector, tab, servers):
    values = _FROM_FORM[tab](context)
    parameters, errors = _CHANGES[tab](values, connector)
    if errors:
        return _render(context, connector, tab, values, servers, errors)
    if not parameters:
        return _render(context, connector, tab, values, servers, {"nothing": "Nothing was changed."})
    text = shellCommand("Set-SendConnector", connector.Name, **parameters)
    answers = ()
    if parameters.get("AuthenticationCredential") is CREDENTIAL:
        answers = (values["UserName"], values["Password"])
    name = parameters.get("Name") or connector.Name

    def done(_):
        return completion(
            context,
            "Send Connector Properties",
            text,
            tags.p(
                tags.a("Properties of ", name, href=context.url("sendconnector", name, tab),
                       id="properties"),
                " | ",
                tags.a("Send Connectors", href=context.url("sendconnectors"), id="connectors"),
            ),
        )

    def refused(failure):
        message = shellMessage(failure)
        return _render(context, connector, tab, values, servers, {fieldOf(message) or "": message})

    return context.change(text, answers=answers).addCallbacks(done, refused)


def _render(context, connector, tab, values, servers, errors):
    known = set(_FIELDS[tab])
    general = [message for key, message in errors.items() if key not in known]
    tabs = tags.ul(
        *(
            tags.li(tags.strong(label) if key == tab else
                    tags.a(label, href=context.url("sendconnector", connector.Name, key)))
            for key, label in TABS
        ),
        class_="tabs",
        id="tabs",
    )
    body = _RENDER[tab](connector, values, servers, errors)
    return context.render(
        f"{connector.Name} Properties",
        tabs,
        *(tags.p(message, class_="error", id="error") for message in general),
        context.form(context.url("sendconnector", connector.Name, tab), id="properties")(
            *body,
            tags.p(class_="buttons")(
                tags.button("OK", type="submit", id="ok"),
                tags.a("Cancel", href=context.url("sendconnectors"), id="cancel"),
            ),
        ),
        code=400 if errors and "nothing" not in errors else 200,
    )


# General.


def _generalFromView(connector):
    return {
        "Name": connector.Name,
        "Enabled": connector.Enabled,
        "ProtocolLoggingLevel": connector.ProtocolLoggingLevel,
        "Fqdn": connector.Fqdn or "",
        "MaxMessageSize": connector.MaxMessageSize,
        "Comment": connector.Comment or "",
    }


def _generalFromForm(context):
    return {
        "Name": context.arg("Name").strip(),
        "Enabled": context.arg("Enabled") == "true",
        "ProtocolLoggingLevel": context.arg("ProtocolLoggingLevel"),
        "Fqdn": context.arg("Fqdn").strip(),
        "MaxMessageSize": context.arg("MaxMessageSize").strip(),
        "Comment": context.arg("Comment").strip(),
    }


def _generalChanges(values, connector):
    if not values["Name"]:
        return {}, {"Name": "Enter a name for the Send connector."}
    current = _generalFromView(connector)
    parameters = {}
    for key in ("Name", "Enabled", "ProtocolLoggingLevel", "MaxMessageSize", "Fqdn", "Comment"):
        if values[key] != current[key]:
            # An emptied FQDN or comment is cleared: $null.
            parameters[key] = values[key] if values[key] != "" else NULL
    if "ProtocolLoggingLevel" in parameters:
        parameters["ProtocolLoggingLevel"] = Bare(parameters["ProtocolLoggingLevel"])
    return parameters, {}


def _generalRender(connector, values, servers, errors):
    return [
        field("Name", "Name:", values["Name"], errors, size="40"),
        checkbox("Enabled", "Enabled", values["Enabled"], errors),
        choice("ProtocolLoggingLevel", "Protocol logging level:", LOGGING_LEVELS,
               values["ProtocolLoggingLevel"], errors),
        field("Fqdn", "Specify the FQDN this connector will provide in response to HELO or EHLO:",
              values["Fqdn"], errors, size="40"),
        field("MaxMessageSize", "Maximum message size:", values["MaxMessageSize"], errors,
              size="30"),
        tags.p(
            tags.label("Comment:", tags.br(),
                       tags.textarea(values["Comment"], name="Comment", id="Comment", rows="3",
                                     cols="60")),
            fieldError("Comment", errors),
        ),
    ]


# Address Space.


def _spacesFromView(connector):
    return {"AddressSpaces": [addressSpaceRow(text) for text in connector.AddressSpaces]}


def _spacesFromForm(context):
    rows = []
    for index in range(_count(context)):
        address = context.arg(f"Address-{index}").strip()
        if not address or context.arg(f"Remove-{index}") == "true":
            continue
        rows.append({
            "Type": context.arg(f"Type-{index}", "SMTP"),
            "Address": address,
            "Cost": context.arg(f"Cost-{index}").strip() or "1",
            "IncludeSubdomains": context.arg(f"IncludeSubdomains-{index}") == "true",
        })
    return {"AddressSpaces": rows}


def _count(context):
    rows = context.arg("rows")
    return min(int(rows), 1000) if rows.isdigit() else 0


def _spacesChanges(values, connector):
    wanted = [addressSpaceText(row) for row in values["AddressSpaces"]]
    current = [addressSpaceText(row) for row in _spacesFromView(connector)["AddressSpaces"]]
    return ({"AddressSpaces": wanted} if wanted != current else {}), {}


def _spacesRender(connector, values, servers, errors):
    rows = values["AddressSpaces"] + [
        {"Type": "SMTP", "Address": "", "Cost": "1", "IncludeSubdomains": False}
    ]
    lines = []
    for index, row in enumerate(rows):
        subdomains = tags.input(type="checkbox", name=f"IncludeSubdomains-{index}", value="true",
                                id=f"IncludeSubdomains-{index}")
        if row["IncludeSubdomains"]:
            subdomains(checked="checked")
        remove = tags.input(type="checkbox", name=f"Remove-{index}", value="true",
                            id=f"Remove-{index}")
        lines.append(tags.tr(
            tags.td(row["Type"], tags.input(type="hidden", name=f"Type-{index}", value=row["Type"])),
            tags.td(tags.input(name=f"Address-{index}", id=f"Address-{index}", value=row["Address"])),
            tags.td(tags.input(name=f"Cost-{index}", id=f"Cost-{index}", value=row["Cost"],
                               size="4")),
            tags.td(subdomains),
            tags.td(remove if index < len(rows) - 1 else "(new)"),
        ))
    return [
        tags.input(type="hidden", name="rows", value=str(len(rows))),
        tags.table(id="AddressSpaces")(
            tags.tr(*(tags.th(h) for h in ADDRESS_SPACE_HEADINGS), tags.th("Remove")),
            *lines,
        ),
        fieldError("AddressSpaces", errors),
    ]


# Network.


def _networkFromView(connector):
    mechanism, overTLS = choiceOf(connector.SmartHostAuthMechanism)
    return {
        "DNSRoutingEnabled": connector.DNSRoutingEnabled,
        "UseExternalDNSServersEnabled": connector.UseExternalDNSServersEnabled,
        "SmartHosts": list(connector.SmartHosts),
        "RequireTLS": connector.RequireTLS,
        "SmartHostAuthMechanism": mechanism,
        "BasicAuthRequireTLS": overTLS,
        "UserName": "",
    }


def _networkFromForm(context):
    values = {
        "DNSRoutingEnabled": context.arg("DNSRoutingEnabled", "true") != "false",
        "UseExternalDNSServersEnabled": context.arg("UseExternalDNSServersEnabled") == "true",
        "SmartHosts": [
            host
            for index in range(_count(context))
            if (host := context.arg(f"SmartHost-{index}").strip())
            and context.arg(f"Remove-{index}") != "true"
        ],
        "RequireTLS": context.arg("RequireTLS") == "true",
    }
    readAuthentication(context, values)
    return values


def _networkChanges(values, connector):
    current = _networkFromView(connector)
    parameters = {}
    for key in ("DNSRoutingEnabled", "UseExternalDNSServersEnabled", "SmartHosts", "RequireTLS"):
        if values[key] != current[key]:
            parameters[key] = values[key]
    mechanism = values["SmartHostAuthMechanism"]
    if (mechanism, values["BasicAuthRequireTLS"] and mechanism == "BasicAuth") != (
        current["SmartHostAuthMechanism"], current["BasicAuthRequireTLS"]
    ):
        parameters["SmartHostAuthMechanism"] = mechanismOf(mechanism, values["BasicAuthRequireTLS"])
    if mechanism != "BasicAuth":
        return parameters, {}
    typed = values["UserName"] or values.get("Password")
    if not typed and connector.AuthenticationCredential:
        return parameters, {}
    errors = {}
    if not values["UserName"]:
        errors["UserName"] = "Enter the user name the smart host takes."
    if not values.get("Password"):
        errors["Password"] = "Enter the password."
    if errors:
        return {}, errors
    parameters["AuthenticationCredential"] = CREDENTIAL
    return parameters, {}


def _networkRender(connector, values, servers, errors):
    hosts = values["SmartHosts"] + [""]
    lines = [
        tags.tr(
            tags.td(tags.input(name=f"SmartHost-{index}", id=f"SmartHost-{index}", value=host)),
            tags.td(tags.input(type="checkbox", name=f"Remove-{index}", value="true",
                               id=f"Remove-{index}") if index < len(hosts) - 1 else "(new)"),
        )
        for index, host in enumerate(hosts)
    ]
    smartHosts = [
        tags.input(type="hidden", name="rows", value=str(len(hosts))),
        tags.table(id="SmartHosts")(tags.tr(tags.th("Smart host"), tags.th("Remove")), *lines),
        fieldError("SmartHosts", errors),
    ]
    dns = checkbox("UseExternalDNSServersEnabled",
                   "Use the External DNS Lookup settings on the transport server",
                   values["UseExternalDNSServersEnabled"], errors)
    return [
        *radio(
            "DNSRoutingEnabled",
            [
                ("true", 'Use domain name system (DNS) "MX" records to route mail automatically',
                 dns),
                ("false", "Route mail through the following smart hosts:", *smartHosts),
            ],
            "true" if values["DNSRoutingEnabled"] else "false",
            errors,
        ),
        checkbox("RequireTLS", "Require TLS (mail waits rather than leave without STARTTLS)",
                 values["RequireTLS"], errors),
        tags.h3("Smart host authentication"),
        *authenticationFields(values, errors, connector.AuthenticationCredential),
    ]


# Source Server.


def _serversFromView(connector):
    return {"SourceTransportServers": list(connector.SourceTransportServers)}


def _serversFromForm(context):
    return {"SourceTransportServers": context.args("SourceTransportServers")}


def _serversChanges(values, connector):
    wanted = values["SourceTransportServers"]
    if sorted(wanted) == sorted(connector.SourceTransportServers):
        return {}, {}
    return {"SourceTransportServers": wanted}, {}


def _serversRender(connector, values, servers, errors):
    chosen = values["SourceTransportServers"]
    boxes = []
    for server in list(servers) + [s for s in chosen if s not in servers]:
        box = tags.input(type="checkbox", name="SourceTransportServers", value=server,
                         id=f"server-{server}")
        if server in chosen:
            box(checked="checked")
        boxes.append(tags.li(tags.label(box, " ", server)))
    return [
        tags.p("Mail sent through this connector leaves from these Hub Transport servers:"),
        tags.ul(*boxes, class_="choices"),
        fieldError("SourceTransportServers", errors),
    ]


_FROM_VIEW = {
    "general": _generalFromView,
    "addressspace": _spacesFromView,
    "network": _networkFromView,
    "sourceserver": _serversFromView,
}
_FROM_FORM = {
    "general": _generalFromForm,
    "addressspace": _spacesFromForm,
    "network": _networkFromForm,
    "sourceserver": _serversFromForm,
}
_CHANGES = {
    "general": _generalChanges,
    "addressspace": _spacesChanges,
    "network": _networkChanges,
    "sourceserver": _serversChanges,
}
_RENDER = {
    "general": _generalRender,
    "addressspace": _spacesRender,
    "network": _networkRender,
    "sourceserver": _serversRender,
}
# The fields of each tab, beside which the Shell's refusals are shown.
_FIELDS = {
    "general": ("Name", "Enabled", "ProtocolLoggingLevel", "Fqdn", "MaxMessageSize", "Comment"),
    "addressspace": ("AddressSpaces",),
    "network": ("DNSRoutingEnabled", "UseExternalDNSServersEnabled", "SmartHosts", "RequireTLS",
                "SmartHostAuthMechanism", "AuthenticationCredential", "UserName", "Password",
                "BasicAuthRequireTLS"),
    "sourceserver": ("SourceTransportServers",),
}
