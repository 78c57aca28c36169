"""
Organization Configuration > Hub Transport > Accepted Domains: the list,
and the New Accepted Domain wizard (New-AcceptedDomain).
"""

from twisted.web.template import tags

from exmta.console.overview import table
from exmta.console.page import command
from exmta.console.wizard import Wizard, WizardPage, choice, field

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
            table(
                "accepted-domains",
                ("Name", "DomainName", "DomainType", "Default"),
                objects,
            ),
        )

    return context.invoke("Get-AcceptedDomain").addCallback(shown)


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
        return (tags.p(tags.a("Accepted Domains", href=context.url("accepteddomains"))),)


NEW = NewAcceptedDomain()

ROUTES = {(b"GET", "accepteddomains"): acceptedDomains, **NEW.routes()}
NAVIGATION = (("Organization Configuration", "Accepted Domains", "accepteddomains"),)
