"""
Recipient Configuration > Mailbox: the mailboxes (Get-Mailbox), the New
Mailbox wizard (New-Mailbox) and Remove (Remove-Mailbox, after a
question).

The password is given as the Shell is given one, by a prompt:
C{-Password (Read-Host 'Enter password' -AsSecureString)}, which the
wizard answers from the administrator's session when the command runs.
The password is never rendered, not even on the page where it was typed,
and never logged: the command's text does not hold it.
"""

from twisted.web.template import tags

from exmta.console.page import Bare, command, completion
from exmta.console.servers import notFound, orNotFound
from exmta.console.wizard import Wizard, WizardPage, field, fieldError, shellMessage
from exmta.shell.parser import ShellSyntaxError
from exmta.shell.runtime import ShellError

PASSWORD_PROMPT = " -Password (Read-Host 'Enter password' -AsSecureString)"


def mailboxes(context, rest):
    if rest:
        return notFound(context)

    def shown(found):
        rows = [
            tags.tr(
                tags.td(m.Name),
                tags.td(m.Alias),
                tags.td(m.PrimarySmtpAddress),
                tags.td(m.UserPrincipalName or ""),
                tags.td(tags.a("Remove", href=context.url("remove-mailbox", m.Name),
                               id=f"remove-{m.Alias}")),
            )
            for m in found
        ]
        header = tags.tr(*(tags.th(h) for h in ("Name", "Alias", "PrimarySmtpAddress",
                                                "UserPrincipalName", "")))
        new = ""
        if context.canChange:
            new = tags.p(tags.a("New Mailbox...", href=context.url(NEW.path), id="new-mailbox"))
        return context.render("Mailbox", new, tags.table(id="mailboxes")(header, *rows))

    return context.invoke("Get-Mailbox").addCallback(shown)


def removeMailbox(context, rest):
    if len(rest) != 1:
        return notFound(context)
    name = rest[0]
    back = tags.p(tags.a("Mailbox", href=context.url("mailboxes"), id="back-to-mailboxes"))
    if context.request.method == b"GET":
        return context.invoke(command("Get-Mailbox", name)).addCallbacks(
            lambda _: context.render(
                "Remove Mailbox",
                tags.p("Are you sure you want to permanently remove the mailbox ",
                       tags.strong(name), " and its user account?"),
                context.form(context.url("remove-mailbox", name), id="confirm")(
                    tags.button("Yes", type="submit", id="yes"),
                    " ",
                    tags.a("No", href=context.url("mailboxes"), id="no"),
                ),
            ),
            orNotFound(context),
        )
    text = command("Remove-Mailbox", name)

    def refused(failure):
        failure.trap(ShellError, ShellSyntaxError)
        return context.render("Remove Mailbox", tags.p(shellMessage(failure), class_="error",
                                                       id="error"), back)

    return context.change(text).addCallbacks(
        lambda _: completion(context, "Remove Mailbox", text, back), refused
    )


def _password(name, label, errors):
    return tags.p(
        tags.label(label, " ", tags.input(type="password", name=name, id=name,
                                          autocomplete="new-password")),
        fieldError(name, errors),
    )


class _UserInformation(WizardPage):
    title = "User Information"
    fields = ("Name", "UserPrincipalName", "Password")

    def render(self, context, state, errors):
        kept = ""
        if state.get("Password"):
            kept = tags.p("A password was entered; leave the fields empty to keep it.",
                          id="password-kept")
        return [
            field("Name", "Name:", state.get("Name"), errors, size="40"),
            field("UserPrincipalName", "User logon name (user principal name):",
                  state.get("UserPrincipalName"), errors, size="40"),
            kept,
            _password("Password", "Password:", errors),
            _password("ConfirmPassword", "Confirm password:", errors),
        ]

    def read(self, context, state, action):
        state["Name"] = context.arg("Name").strip()
        state["UserPrincipalName"] = context.arg("UserPrincipalName").strip()
        password = context.arg("Password")
        confirm = context.arg("ConfirmPassword")
        if password != confirm:
            return {"ConfirmPassword": "The passwords do not match."}
        if password:
            state["Password"] = password
        if action != "next":
            return {}
        errors = {name: "Enter a value." for name in ("Name", "UserPrincipalName")
                  if not state[name]}
        if not state.get("Password"):
            errors["Password"] = "Enter a password."
        return errors


class _MailboxSettings(WizardPage):
    title = "Mailbox Settings"
    fields = ("Alias", "PrimarySmtpAddress")

    def render(self, context, state, errors):
        alias = state.get("Alias") or state["UserPrincipalName"].partition("@")[0]
        return [
            field("Alias", "Alias:", alias, errors, size="40"),
            tags.p("The mailbox's address is the alias at the first Authoritative accepted "
                   "domain.", fieldError("PrimarySmtpAddress", errors)),
        ]

    def read(self, context, state, action):
        state["Alias"] = context.arg("Alias").strip()
        if action == "next" and not state["Alias"]:
            return {"Alias": "Enter a value."}
        return {}


class NewMailbox(Wizard):
    path = "new-mailbox"
    title = "New Mailbox"
    pages = (_UserInformation(), _MailboxSettings())

    def initialState(self, context, rest):
        return {"Name": "", "UserPrincipalName": "", "Alias": ""} if not rest else None

    def command(self, state):
        return command(
            "New-Mailbox",
            Name=state["Name"],
            Alias=Bare(state["Alias"]),
            UserPrincipalName=state["UserPrincipalName"],
        ) + PASSWORD_PROMPT

    def answers(self, state):
        return (state["Password"],)

    def completed(self, context, state):
        return (tags.p(tags.a("Mailbox", href=context.url("mailboxes"), id="back-to-mailboxes")),)


NEW = NewMailbox()

ROUTES = {
    (b"GET", "mailboxes"): mailboxes,
    (b"GET", "remove-mailbox"): removeMailbox,
    (b"POST", "remove-mailbox"): removeMailbox,
    **NEW.routes(),
}
NAVIGATION = (("Recipient Configuration", "Mailbox", "mailboxes"),)
