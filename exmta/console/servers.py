"""
Server Configuration > Hub Transport: the transport servers
(Get-TransportServer), one server's Receive connectors (Get-ReceiveConnector
-Server) with Enable, Disable, Remove and Properties, and the server's own
properties (Set-TransportServer).

A property page runs its Set- cmdlet with the parameters whose value
changed (L{submit}); the Shell's refusal is shown beside the field it
names, and the page shows again, filled with what was typed.
"""

from twisted.web.template import tags

from exmta.console.fields import (
    Check,
    CommaList,
    Text,
    changes,
    defaultButton,
    readForm,
    setCommand,
)
from exmta.console.page import command, completion
from exmta.console.wizard import fieldOf, shellMessage
from exmta.shell.parser import ShellSyntaxError
from exmta.shell.runtime import ShellError
from exmta.shell.format import formatValue


def submit(context, cmdlet, identity, fields, old, new, show, reread):
    """
    Run C{cmdlet} on C{identity} with the fields that changed.

    @param old: {field: value} as the page showed them, read again now.
    @param new: {field: value} as posted.
    @param show: C{show(values, errors, ran, note)} renders the page:
        C{ran} is the Shell text that ran (for the completion block), or
        L{None}.
    @param reread: returns a Deferred of the values after the change.
    """
    changed = changes(fields, old, new)
    if not changed:
        return show(new, {}, None, "Nothing was changed.")
    text = setCommand(cmdlet, identity, changed)

    def refused(failure):
        failure.trap(ShellError, ShellSyntaxError)
        message = shellMessage(failure)
        name = fieldOf(message)
        if name not in {f.name for f in fields}:
            name = ""
        return show(new, {name: message}, None, None)

    return (
        context.change(text)
        .addCallback(lambda _: reread())
        .addCallbacks(lambda values: show(values, {}, text, None), refused)
    )


def answer(context, title, body, errors, ran, note):
    """
    Render a property page: the completion block when a command ran, the
    Shell's refusal that names no field, or a note.
    """
    general = errors.get("")
    top = []
    if general:
        top.append(tags.p(general, class_="error", id="error"))
    if note:
        top.append(tags.p(note, id="note"))
    if ran:
        return completion(context, title, ran, *top, *body)
    return context.render(title, *top, *body)


def notFound(context):
    return context.refuse(404, "There is no such object.")


def orNotFound(context):
    """
    @return: an errback answering 404 when the Shell found nothing to
        read (the name in the address is not there).
    """

    def missing(failure):
        failure.trap(ShellError)
        return notFound(context)

    return missing


def identityOf(server, name):
    return f"{server}\\{name}"


# The transport servers.


def hubTransport(context, rest):
    if not rest:
        return context.invoke("Get-TransportServer").addCallback(_serverList, context)
    if len(rest) != 1:
        return notFound(context)
    server = rest[0]
    found = context.invoke(command("Get-TransportServer", server))
    found.addCallback(
        lambda servers: context.invoke(command("Get-ReceiveConnector", Server=servers[0].Name))
        .addCallback(lambda connectors: _serverPage(context, servers[0], connectors))
    )
    return found.addErrback(orNotFound(context))


def _serverList(servers, context):
    rows = [
        tags.tr(
            tags.td(tags.a(s.Name, href=context.url("hubtransport", s.Name))),
            tags.td(s.Fqdn),
            tags.td(s.DeliveryAgent),
            tags.td(tags.a("Properties", href=context.url("server-properties", s.Name))),
        )
        for s in servers
    ]
    header = tags.tr(*(tags.th(h) for h in ("Name", "Fqdn", "DeliveryAgent", "")))
    return context.render(
        "Hub Transport",
        tags.table(id="transport-servers")(header, *rows),
        tags.p(tags.a("Transport Agents", href=context.url("transportagents"))),
    )


RECEIVE_COLUMNS = ("Name", "Status", "Bindings", "RemoteIPRanges", "AuthMechanism",
                   "PermissionGroups")


def _serverPage(context, server, connectors):
    rows = []
    for connector in connectors:
        parts = (server.Name, connector.Name)
        state = context.form(context.url("receiveconnector-enabled", *parts), class_="inline")(
            tags.input(type="hidden", name="Enabled",
                       value="false" if connector.Enabled else "true"),
            tags.button("Disable" if connector.Enabled else "Enable", type="submit",
                        id=f"state-{connector.Name}"),
        )
        rows.append(
            tags.tr(
                tags.td(connector.Name),
                tags.td("Enabled" if connector.Enabled else "Disabled"),
                tags.td(formatValue(connector.Bindings)),
                tags.td(formatValue(connector.RemoteIPRanges)),
                tags.td(connector.AuthMechanism),
                tags.td(connector.PermissionGroups),
                tags.td(
                    tags.a("Properties", href=context.url("receiveconnector", *parts),
                           id=f"properties-{connector.Name}"),
                    " ",
                    tags.a("Permissions", href=context.url("permissions", *parts),
                           id=f"permissions-{connector.Name}"),
                    " ",
                    state,
                    " ",
                    tags.a("Remove", href=context.url("remove-receiveconnector", *parts),
                           id=f"remove-{connector.Name}"),
                ),
            )
        )
    header = tags.tr(*(tags.th(h) for h in RECEIVE_COLUMNS + ("",)))
    new = ""
    if context.canChange:
        new = tags.p(
            tags.a("New Receive Connector...", href=context.url("new-receiveconnector", server.Name),
                   id="new-receiveconnector")
        )
    return context.render(
        f"Hub Transport: {server.Name}",
        tags.p(server.Fqdn, " ",
               tags.a("Properties", href=context.url("server-properties", server.Name),
                      id="server-properties")),
        tags.h2("Receive Connectors"),
        new,
        tags.table(id="receive-connectors")(header, *rows),
    )


# Enable, Disable, Remove.


def receiveConnectorEnabled(context, rest):
    if len(rest) != 2:
        return notFound(context)
    enabled = context.arg("Enabled") == "true"
    text = command("Set-ReceiveConnector", identityOf(*rest), Enabled=enabled)
    back = tags.p(tags.a(f"Hub Transport: {rest[0]}", href=context.url("hubtransport", rest[0]),
                         id="back-to-server"))
    return context.change(text).addCallbacks(
        lambda _: completion(context, "Enable" if enabled else "Disable", text, back),
        lambda failure: _refused(context, failure, back),
    )


def _refused(context, failure, *more):
    failure.trap(ShellError, ShellSyntaxError)
    return context.render("Refused", tags.p(shellMessage(failure), class_="error", id="error"),
                          *more)


def removeReceiveConnector(context, rest):
    """
    GET: the EMC's question, as a page (no script needed); POST: the
    removal.
    """
    if len(rest) != 2:
        return notFound(context)
    identity = identityOf(*rest)
    back = tags.p(tags.a(f"Hub Transport: {rest[0]}", href=context.url("hubtransport", rest[0]),
                         id="back-to-server"))
    if context.request.method == b"GET":
        return context.invoke(command("Get-ReceiveConnector", identity)).addCallbacks(
            lambda _: context.render(
                "Remove Receive Connector",
                tags.p("Are you sure you want to permanently remove the Receive connector ",
                       tags.strong(identity), "?"),
                context.form(context.url("remove-receiveconnector", *rest), id="confirm")(
                    tags.button("Yes", type="submit", id="yes"),
                    " ",
                    tags.a("No", href=context.url("hubtransport", rest[0]), id="no"),
                ),
            ),
            orNotFound(context),
        )
    text = command("Remove-ReceiveConnector", identity)
    return context.change(text).addCallbacks(
        lambda _: completion(context, "Remove Receive Connector", text, back),
        lambda failure: _refused(context, failure, back),
    )


# The server's properties.

SERVER_PROPERTIES = (
    ("General", (
        Text("Fqdn", "FQDN:", bare=True),
        Text("ExternalPostmasterAddress", "External postmaster address:"),
        Text("DeliveryAgent", "Delivery agent:", bare=True),
    )),
    ("Limits", (
        Text("MessageRetryInterval", "Outbound connection failure message retry interval:",
             bare=True),
        Text("TransientFailureRetryInterval", "Transient failure retry interval:", bare=True),
        Text("TransientFailureRetryCount", "Transient failure retry attempts:", bare=True),
        Text("OutboundConnectionFailureRetryInterval",
             "Outbound connection failure retry interval:", bare=True),
        Text("MessageExpirationTimeout", "Maximum time since submission:", bare=True),
        Text("DelayNotificationTimeout", "Notify sender when message is delayed more than:",
             bare=True),
        Text("MaxOutboundConnections", "Maximum concurrent outbound connections:", bare=True),
        Text("MaxPerDomainOutboundConnections",
             "Maximum concurrent outbound connections per domain:", bare=True),
    )),
    ("Log Settings", (
        Check("MessageTrackingLogEnabled", "Enable message tracking log"),
        Text("MessageTrackingLogPath", "Message tracking log path:"),
        Text("SendProtocolLogPath", "Send protocol log path:"),
        Text("ReceiveProtocolLogPath", "Receive protocol log path:"),
    )),
    ("Paths and Certificate", (
        Text("QueueDatabasePath", "Queue database path:"),
        Text("MailboxDatabasePath", "Mailbox database path:"),
        Text("TlsCertificatePath", "TLS certificate path:"),
        Text("TlsPrivateKeyPath", "TLS private key path:"),
    )),
    ("DNS Lookups", (
        CommaList("InternalDNSServers", "Internal DNS servers:"),
        CommaList("ExternalDNSServers", "External DNS servers:"),
    )),
)
SERVER_FIELDS = tuple(f for _, group in SERVER_PROPERTIES for f in group)


def serverProperties(context, rest):
    if len(rest) != 1:
        return notFound(context)
    server = rest[0]

    def read():
        return context.invoke(command("Get-TransportServer", server)).addCallback(
            lambda servers: {f.name: f.current(servers[0]) for f in SERVER_FIELDS}
        )

    def show(values, errors, ran=None, note=None):
        groups = [
            tags.fieldset(tags.legend(title), *(f.render(context, values[f.name], errors)
                                                 for f in group))
            for title, group in SERVER_PROPERTIES
        ]
        form = context.form(context.url("server-properties", server), id="properties")(
            defaultButton("ok", "OK"),
            tags.p("The running server applies a change at once, but for its folders, log "
                   "settings and outbound connection limits, which apply at its next start."),
            *groups,
            tags.p(tags.button("OK", type="submit", name="action", value="ok", id="ok")),
        )
        back = tags.p(tags.a(f"Hub Transport: {server}", href=context.url("hubtransport", server)))
        return answer(context, f"{server} Properties", [back, form], errors, ran, note)

    def posted(old):
        new = readForm(SERVER_FIELDS, context, "ok", old)
        return submit(context, "Set-TransportServer", server, SERVER_FIELDS, old, new, show, read)

    current = read()
    if context.request.method == b"GET":
        current.addCallback(show, {})
    else:
        current.addCallback(posted)
    return current.addErrback(orNotFound(context))


ROUTES = {
    (b"GET", "hubtransport"): hubTransport,
    (b"GET", "server-properties"): serverProperties,
    (b"POST", "server-properties"): serverProperties,
    (b"POST", "receiveconnector-enabled"): receiveConnectorEnabled,
    (b"GET", "remove-receiveconnector"): removeReceiveConnector,
    (b"POST", "remove-receiveconnector"): removeReceiveConnector,
}
NAVIGATION = (("Server Configuration", "Hub Transport", "hubtransport"),)
