"""
A Receive connector's properties, with the EMC's tabs: General, Network,
Authentication and Permission Groups.  Each tab reads the connector with
Get-ReceiveConnector and runs Set-ReceiveConnector with the parameters
whose value changed, showing the command that ran.
"""

from twisted.web.template import tags

from exmta.console.fields import Check, Choice, Flags, Items, Text, defaultButton, readForm
from exmta.console.page import command
from exmta.console.servers import answer, identityOf, notFound, orNotFound, submit

BINDINGS = Items(
    "Bindings",
    "Use these local IP addresses to receive mail:",
    "Add a binding (IP address:port):",
    "127.0.0.1:25",
)
REMOTE_IP_RANGES = Items(
    "RemoteIPRanges",
    "Receive mail from remote servers that have these IP addresses:",
    "Add IP address(es) of remote servers:",
    "192.168.5.77",
)
FQDN_LABEL = "Specify the FQDN this connector will provide in response to HELO or EHLO:"

AUTH_MECHANISM = Flags(
    "AuthMechanism",
    "Authentication mechanisms",
    (
        ("Tls", "Transport Layer Security (TLS)"),
        ("BasicAuth", "Basic Authentication"),
        ("BasicAuthRequireTLS", "Offer Basic authentication only after starting TLS"),
        ("ExchangeServer", "Exchange Server authentication"),
        ("ExternalAuthoritative", "Externally Secured (for example, with IPsec)"),
    ),
    unsupported=(
        ("Integrated", "Integrated Windows authentication (not supported by exmta)"),
    ),
)
PERMISSION_GROUPS = Flags(
    "PermissionGroups",
    "Specify who is allowed to connect to this Receive connector",
    (
        ("AnonymousUsers", "Anonymous users"),
        ("ExchangeUsers", "Exchange users"),
        ("ExchangeServers", "Exchange servers"),
        ("ExchangeLegacyServers", "Legacy Exchange Servers"),
        ("Partners", "Partners"),
    ),
)

TABS = (
    ("general", "General", (
        Check("Enabled", "Enabled"),
        Choice("ProtocolLoggingLevel", "Protocol logging level:", ("None", "Verbose")),
        Text("Fqdn", FQDN_LABEL, bare=True),
        Text("MaxMessageSize", "Maximum message size:", bare=True),
        Text("Banner", "Banner (the 220 greeting):"),
        Text("Comment", "Comment:"),
    )),
    ("network", "Network", (BINDINGS, REMOTE_IP_RANGES)),
    ("authentication", "Authentication", (AUTH_MECHANISM,)),
    ("permissiongroups", "Permission Groups", (PERMISSION_GROUPS,)),
)


def receiveConnector(context, rest):
    """
    C{receiveconnector/<server>/<name>[/<tab>]}: GET shows a tab, POST
    changes what it shows (or only edits a list of the page: Add, Remove).
    """
    if len(rest) == 2:
        rest = rest + ["general"]
    tabs = {key: (title, fields) for key, title, fields in TABS}
    if len(rest) != 3 or rest[2] not in tabs:
        return notFound(context)
    server, name, tab = rest
    identity = identityOf(server, name)
    title, fields = tabs[tab]

    def read():
        return context.invoke(command("Get-ReceiveConnector", identity)).addCallback(
            lambda found: {f.name: f.current(found[0]) for f in fields}
        )

    def show(values, errors, ran=None, note=None):
        return answer(
            context,
            f"{name} Properties",
            _tab(context, server, name, tab, fields, values, errors),
            errors,
            ran,
            note,
        )

    def posted(old):
        action = context.arg("action", "ok")
        new = readForm(fields, context, action, old)
        if action != "ok":
            return show(new, {})
        return submit(context, "Set-ReceiveConnector", identity, fields, old, new, show, read)

    current = read()
    if context.request.method == b"GET":
        current.addCallback(show, {})
    else:
        current.addCallback(posted)
    return current.addErrback(orNotFound(context))


def tabBar(context, server, name, current):
    """
    @return: the links to a connector's tabs, and to its permissions.
    """
    links = [
        tags.strong(title) if key == current
        else tags.a(title, href=context.url("receiveconnector", server, name, key), id=f"tab-{key}")
        for key, title, _ in TABS
    ]
    permissions = (
        tags.strong("Permissions") if current == "permissions"
        else tags.a("Permissions", href=context.url("permissions", server, name), id="tab-permissions")
    )
    return tags.p(*links, permissions, class_="tabs")


def _tab(context, server, name, tab, fields, values, errors):
    form = context.form(context.url("receiveconnector", server, name, tab), id="properties")(
        defaultButton("ok", "OK"),
        *(f.render(context, values[f.name], errors) for f in fields),
        tags.p(
            tags.button("OK", type="submit", name="action", value="ok", id="ok"),
            " ",
            tags.a("Cancel", href=context.url("hubtransport", server), id="cancel"),
        ),
    )
    return [
        tags.p("Receive connector ", tags.strong(identityOf(server, name)), " on ",
               tags.a(server, href=context.url("hubtransport", server))),
        tabBar(context, server, name, tab),
        form,
    ]


ROUTES = {
    (b"GET", "receiveconnector"): receiveConnector,
    (b"POST", "receiveconnector"): receiveConnector,
}
