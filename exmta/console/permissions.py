"""
Permissions on a Receive connector: the extended rights granted
(Get-ADPermission), granted with Add-ADPermission and removed with
Remove-ADPermission, written as the reference document writes its
anonymous relay line:

    Get-ReceiveConnector "FromInternetGateway" | Add-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights "Ms-Exch-SMTP-Accept-Any-Recipient"

The EMC of Exchange 2010 has no page for this (the document sends the
administrator to the Shell); the console has one, running the same line.
"""

from twisted.web.template import tags

from exmta.console.page import command
from exmta.console.receiveconnectors import tabBar
from exmta.console.servers import answer, identityOf, notFound, orNotFound
from exmta.console.wizard import checkbox, field, fieldOf, shellMessage
from exmta.shell.parser import ShellSyntaxError
from exmta.shell.runtime import ShellError

ANONYMOUS = "NT AUTHORITY\\ANONYMOUS LOGON"
ACCEPT_ANY_RECIPIENT = "Ms-Exch-SMTP-Accept-Any-Recipient"


def _rights(text):
    return [r.strip() for r in text.split(",") if r.strip()]


def permissionCommand(cmdlet, identity, user, rights, deny):
    """
    @return: C{Get-ReceiveConnector 'X' | Add-ADPermission -User ...
        -ExtendedRights ...}, with C{-Deny} for a deny entry.
    """
    text = command("Get-ReceiveConnector", identity) + " | " + command(
        cmdlet, User=user, ExtendedRights=rights
    )
    return text + (" -Deny" if deny else "")


def permissions(context, rest):
    """
    C{permissions/<server>/<name>}: GET lists, POST adds (C{action=add})
    or removes (C{action=remove}) an entry.
    """
    if len(rest) != 2:
        return notFound(context)
    server, name = rest
    identity = identityOf(server, name)
    typed = {"User": ANONYMOUS, "ExtendedRights": ACCEPT_ANY_RECIPIENT, "Deny": False}

    def show(entries, errors=None, ran=None):
        errors = errors or {}
        return answer(
            context,
            f"{name} Permissions",
            _body(context, server, name, entries, typed, errors),
            errors,
            ran,
            None,
        )

    def read():
        return context.invoke(command("Get-ADPermission", identity))

    if context.request.method == b"GET":
        return read().addCallback(show).addErrback(orNotFound(context))

    action = context.arg("action")
    typed.update(
        User=context.arg("User").strip(),
        ExtendedRights=context.arg("ExtendedRights").strip(),
        Deny=context.arg("Deny") == "true",
    )
    if action not in ("add", "remove"):
        return notFound(context)
    if action == "add" and not (typed["User"] and _rights(typed["ExtendedRights"])):
        missing = "User" if not typed["User"] else "ExtendedRights"
        return read().addCallback(show, {missing: "Enter a value."})
    cmdlet = "Add-ADPermission" if action == "add" else "Remove-ADPermission"
    text = permissionCommand(
        cmdlet, identity, typed["User"], _rights(typed["ExtendedRights"]), typed["Deny"]
    )
    if action == "remove":
        typed.update(User=ANONYMOUS, ExtendedRights=ACCEPT_ANY_RECIPIENT, Deny=False)

    def refused(failure):
        failure.trap(ShellError, ShellSyntaxError)
        message = shellMessage(failure)
        where = fieldOf(message) if action == "add" else None
        return read().addCallback(
            show, {where if where in ("User", "ExtendedRights") else "": message}
        )

    return (
        context.change(text)
        .addCallbacks(lambda _: read().addCallback(show, {}, text), refused)
        .addErrback(orNotFound(context))
    )


def _body(context, server, name, entries, typed, errors):
    url = context.url("permissions", server, name)
    rows = []
    for index, entry in enumerate(entries):
        remove = context.form(url, class_="inline")(
            tags.input(type="hidden", name="action", value="remove"),
            tags.input(type="hidden", name="User", value=entry.User),
            tags.input(type="hidden", name="ExtendedRights", value=",".join(entry.ExtendedRights)),
            tags.input(type="hidden", name="Deny", value="true" if entry.Deny else "false"),
            tags.button("Remove", type="submit", id=f"remove-permission-{index}"),
        )
        rows.append(
            tags.tr(
                tags.td(entry.User),
                tags.td(", ".join(entry.ExtendedRights)),
                tags.td("Deny" if entry.Deny else "Allow"),
                tags.td(str(entry.IsInherited)),
                tags.td(remove),
            )
        )
    header = tags.tr(*(tags.th(h) for h in ("User", "ExtendedRights", "Deny", "IsInherited", "")))
    table = tags.table(id="permissions")(header, *rows) if rows else tags.p(
        "No extended rights are granted on this connector beyond its permission groups'.",
        id="no-permissions",
    )
    add = context.form(url, id="add-permission-form")(
        tags.input(type="hidden", name="action", value="add"),
        field("User", "User:", typed["User"], errors, size="40"),
        field("ExtendedRights", "Extended rights (comma list):", typed["ExtendedRights"], errors,
              size="50"),
        checkbox("Deny", "Deny (an entry that takes the rights away)", typed["Deny"], errors),
        tags.p(tags.button("Add", type="submit", id="add-permission")),
    )
    return [
        tags.p("Receive connector ", tags.strong(identityOf(server, name)), " on ",
               tags.a(server, href=context.url("hubtransport", server))),
        tabBar(context, server, name, "permissions"),
        tags.h2("Extended rights granted"),
        table,
        tags.h2("Grant extended rights"),
        add,
    ]


ROUTES = {(b"GET", "permissions"): permissions, (b"POST", "permissions"): permissions}
