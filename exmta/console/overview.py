"""
The organization at a glance, read through the Shell's Get- cmdlets: its
own page, and the lower half of the dashboard (L{exmta.console.dashboard}).
"""

from twisted.web.template import tags

from exmta.shell.format import formatValue, getProperty, shown

# What the overview shows of each cmdlet's objects.
OVERVIEW = (
    ("Server", "Get-TransportServer", ("Name", "Fqdn", "DeliveryAgent")),
    (
        "Receive connectors",
        "Get-ReceiveConnector",
        ("Identity", "Enabled", "Bindings", "RemoteIPRanges", "AuthMechanism", "PermissionGroups"),
    ),
    (
        "Send connectors",
        "Get-SendConnector",
        ("Identity", "Enabled", "AddressSpaces", "SmartHosts", "SmartHostAuthMechanism"),
    ),
    ("Accepted domains", "Get-AcceptedDomain", ("Name", "DomainName", "DomainType", "Default")),
)


def overview(context, rest):
    if rest:
        return context.refuse(404, "There is no such page.")
    return overviewSections(context).addCallback(
        lambda sections: context.render("Organization overview", *sections)
    )


def overviewSections(context):
    """
    @return: a Deferred firing with the overview's headings and tables.
    """
    sections = []

    def read(index=0):
        if index == len(OVERVIEW):
            return sections
        title, cmdlet, columns = OVERVIEW[index]
        sections.append(tags.h2(title))

        def add(objects):
            sections.append(table(cmdlet, columns, objects))

        def failed(failure):
            sections.append(tags.p(failure.getErrorMessage(), class_="error"))

        return (
            context.invoke(cmdlet)
            .addCallbacks(add, failed)
            .addCallback(lambda _: read(index + 1))
        )

    return read()


def table(identifier, columns, objects):
    """
    @return: a table of C{objects}' C{columns}, formatted as the Shell's
        Format-Table would show each value.
    """
    header = tags.tr(*(tags.th(column) for column in columns))
    rows = [
        tags.tr(*(tags.td(formatValue(shown(c, getProperty(o, c)))) for c in columns))
        for o in objects
    ]
    return tags.table(id=identifier, class_="overview")(header, *rows)


ROUTES = {(b"GET", "overview"): overview}
NAVIGATION = (("Organization Configuration", "Organization overview", "overview"),)
