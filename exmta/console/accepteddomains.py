"""
Organization Configuration > Hub Transport > Accepted Domains: the list,
the New Accepted Domain wizard (New-AcceptedDomain), and each domain's
actions: Edit (Set-AcceptedDomain with what changed), Remove (after a
confirmation page) and Set as Default (Set-AcceptedDomain -MakeDefault
$true).

Paths: C{accepteddomains}, C{accepteddomain/NAME/edit},
C{accepteddomain/NAME/remove} and C{accepteddomain/NAME/default} (POST).
"""

from twisted.web.template import tags

from exmta.console.page import command, completion, quote
from exmta.console.wizard import Wizard, WizardPage, choice, field, fieldOf, shellMessage

DOMAIN_TYPES = (
    ("Authoritative", "Authoritative Domain. E-mail is delivered to a recipient in this "
     "Exchange organization."),
    ("InternalRelay", "Internal Relay Domain. E-mail is relayed to an e-mail server in "
     "another Active Directory forest within the organization."),
    ("ExternalRelay", "External Relay Domain. E-mail is relayed to an e-mail server outside "
     "this Exchange organization by the Edge Transport server."),
)


def acceptedDomains(context, rest):
    if rest:
        return context.refuse(404, "There is no such page.")

    def shown(objects):
        new = ""
        if context.canChange:
            new = tags.p(tags.a("New Accepted Domain...", href=context.url(NEW.path), id="new"))
        return context.render(
            "Accepted Domains",
            new,
            tags.table(id="accepted-domains")(
                tags.tr(*(tags.th(c) for c in ("Name", "DomainName", "DomainType", "Default", ""))),
                *(_row(context, domain) for domain in objects),
            ),
        )

    return context.invoke("Get-AcceptedDomain").addCallback(shown)


def _row(context, domain):
    actions = []
    if context.canChange:
        actions = [
            tags.a("Edit", href=context.url("accepteddomain", domain.Name, "edit"), class_="edit"),
            " ",
            tags.a("Remove", href=context.url("accepteddomain", domain.Name, "remove"),
                   class_="remove"),
        ]
        if not domain.Default and domain.DomainType == "Authoritative":
            actions += [
                " ",
                context.form(context.url("accepteddomain", domain.Name, "default"),
                             class_="inline")(
                    tags.button("Set as Default", type="submit", class_="make-default")
                ),
            ]
    return tags.tr(
        tags.td(domain.Name),
        tags.td(domain.DomainName),
        tags.td(domain.DomainType),
        tags.td(str(domain.Default)),
        tags.td(*actions),
    )


def _read(context, name, found):
    def missing(failure):
        return context.refuse(404, shellMessage(failure))

    return context.invoke(f"Get-AcceptedDomain {quote(name)}").addCallbacks(
        lambda domains: found(domains[0]), missing
    )


def acceptedDomain(context, rest):
    """
    GET C{accepteddomain/NAME/edit} (the form) or C{.../remove} (the
    confirmation).
    """
    if len(rest) != 2 or rest[1] not in ("edit", "remove"):
        return context.refuse(404, "There is no such page.")
    name, action = rest
    if action == "edit":
        return _read(context, name, lambda domain: _editForm(context, domain, {}, {}))

    def confirm(domain):
        return context.render(
            "Remove Accepted Domain",
            tags.p("Are you sure you want to permanently remove the accepted domain '",
                   tags.strong(domain.Name), "' (", domain.DomainName, ")?"),
            context.form(context.url("accepteddomain", domain.Name, "remove"))(
                tags.p(class_="buttons")(
                    tags.button("Yes", type="submit", id="yes"),
                    tags.a("No", href=context.url("accepteddomains"), id="no"),
                )
            ),
        )

    return _read(context, name, confirm)


def changeAcceptedDomain(context, rest):
    """
    POST C{accepteddomain/NAME/edit}, C{.../remove} or C{.../default}.
    """
    if len(rest) != 2 or rest[1] not in ("edit", "remove", "default"):
        return context.refuse(404, "There is no such page.")
    name, action = rest
    if action == "remove":
        return _changed(context, command("Remove-AcceptedDomain", name))
    if action == "default":
        return _changed(context, command("Set-AcceptedDomain", name, MakeDefault=True))
    return _read(context, name, lambda domain: _edit(context, domain))


def _changed(context, text):
    back = tags.p(tags.a("Accepted Domains", href=context.url("accepteddomains"), id="domains"))

    def refused(failure):
        return context.render(
            "Accepted Domains",
            tags.p(shellMessage(failure), class_="error", id="error"),
            tags.pre(text, class_="command"),
            back,
            code=400,
        )

    return context.change(text).addCallbacks(lambda _: _changedShown(context, text), refused)


def _edit(context, domain):
    values = {"Name": context.arg("Name").strip(), "DomainType": context.arg("DomainType")}
    if not values["Name"]:
        return _editForm(context, domain, values, {"Name": "Enter a value."})
    changed = {key: value for key, value in values.items() if value != getattr(domain, key)}
    if not changed:
        return _editForm(context, domain, values, {"nothing": "Nothing was changed."})
    text = command("Set-AcceptedDomain", domain.Name, **changed)

    def refused(failure):
        message = shellMessage(failure)
        return _editForm(context, domain, values, {fieldOf(message) or "": message})

    return context.change(text).addCallbacks(lambda _: _changedShown(context, text), refused)


def _changedShown(context, text):
    return completion(
        context, "Accepted Domains", text,
        tags.p(tags.a("Accepted Domains", href=context.url("accepteddomains"), id="domains")),
    )


def _editForm(context, domain, values, errors):
    values = values or {"Name": domain.Name, "DomainType": domain.DomainType}
    general = [m for key, m in errors.items() if key not in ("Name", "DomainType")]
    return context.render(
        f"{domain.Name} Properties",
        *(tags.p(message, class_="error", id="error") for message in general),
        context.form(context.url("accepteddomain", domain.Name, "edit"), id="properties")(
            field("Name", "Name:", values["Name"], errors),
            tags.p("Accepted Domain: ", tags.strong(domain.DomainName, id="DomainName")),
            choice("DomainType", "Domain type:", DOMAIN_TYPES, values["DomainType"], errors),
            tags.p(class_="buttons")(
                tags.button("OK", type="submit", id="ok"),
                tags.a("Cancel", href=context.url("accepteddomains"), id="cancel"),
            ),
        ),
        code=400 if errors and "nothing" not in errors else 200,
    )


class _Introduction(WizardPage):
    title = "New Accepted Domain"
    fields = ("Name", "DomainName", "DomainType")

    def render(self, context, state, errors):
        return [
            field("Name", "Name:", state.get("Name"), errors),
            field("DomainName", "Accepted Domain:", state.get("DomainName"), errors),
            choice("DomainType", "Domain type:", DOMAIN_TYPES, state.get("DomainType"), errors),
        ]

    def read(self, context, state, action):
        for name in self.fields:
            state[name] = context.arg(name).strip()
        if action == "next":
            return {name: "Enter a value." for name in ("Name", "DomainName") if not state[name]}
        return {}


class NewAcceptedDomain(Wizard):
    path = "new-accepteddomain"
    title = "New Accepted Domain"
    pages = (_Introduction(),)

    def initialState(self, context, rest):
        return {"DomainType": "Authoritative"} if not rest else None

    def command(self, state):
        return command(
            "New-AcceptedDomain",
            Name=state["Name"],
            DomainName=state["DomainName"],
            DomainType=state["DomainType"],
        )

    def completed(self, context, state):
        return (
            tags.p(tags.a("Accepted Domains", href=context.url("accepteddomains"), id="domains")),
        )


NEW = NewAcceptedDomain()

ROUTES = {
    (b"GET", "accepteddomains"): acceptedDomains,
    (b"GET", "accepteddomain"): acceptedDomain,
    (b"POST", "accepteddomain"): changeAcceptedDomain,
    **NEW.routes(),
}
NAVIGATION = (("Organization Configuration", "Accepted Domains", "accepteddomains"),)
