"""
Organization Configuration > Hub Transport > Send Connectors: the list
(Get-SendConnector) with each connector's actions as the EMC's action
pane has them: Disable or Enable (Set-SendConnector -Enabled), Remove
(Remove-SendConnector, after a confirmation page) and Properties
(L{exmta.console.sendconnectorproperties}); and the New Send Connector
wizard (L{exmta.console.newsendconnector}).

Paths: C{sendconnectors} (the list), C{sendconnector/NAME/remove} (the
confirmation, and the POST removing), C{sendconnector/NAME/enable} and
C{.../disable} (POST), C{sendconnector/NAME/TAB} (the properties).
"""

from twisted.web.template import tags

from exmta.console import sendconnectorproperties
from exmta.console.newsendconnector import NEW
from exmta.console.page import command, completion
from exmta.console.wizard import shellMessage

COLUMNS = ("Name", "Enabled", "Address spaces", "Smart hosts", "Smart host authentication", "")


def sendConnectors(context, rest):
    if rest:
        return context.refuse(404, "There is no such page.")

    def shown(connectors):
        new = ""
        if context.canChange:
            new = tags.p(tags.a("New Send Connector...", href=context.url(NEW.path), id="new"))
        return context.render(
            "Send Connectors",
            new,
            tags.table(id="send-connectors")(
                tags.tr(*(tags.th(column) for column in COLUMNS)),
                *(_row(context, connector) for connector in connectors),
            ),
        )

    return context.invoke("Get-SendConnector").addCallback(shown)


def _row(context, connector):
    name = connector.Name
    actions = [tags.a("Properties", href=context.url("sendconnector", name, "general"),
                      class_="properties")]
    if context.canChange:
        toggle = "disable" if connector.Enabled else "enable"
        actions += [
            " ",
            context.form(context.url("sendconnector", name, toggle), class_="inline")(
                tags.button(toggle.capitalize(), type="submit", class_=toggle)
            ),
            " ",
            tags.a("Remove", href=context.url("sendconnector", name, "remove"), class_="remove"),
        ]
    return tags.tr(
        tags.td(name),
        tags.td(str(connector.Enabled)),
        tags.td(", ".join(connector.AddressSpaces)),
        tags.td(", ".join(connector.SmartHosts) or "(DNS MX records)"),
        tags.td(connector.SmartHostAuthMechanism),
        tags.td(*actions),
    )


def _changed(context, text):
    """
    Run C{text} and show the completion page, or the Shell's refusal.
    """
    back = tags.p(tags.a("Send Connectors", href=context.url("sendconnectors"), id="connectors"))

    def refused(failure):
        return context.render(
            "Send Connectors",
            tags.p(shellMessage(failure), class_="error", id="error"),
            tags.pre(text, class_="command"),
            back,
            code=400,
        )

    return context.change(text).addCallbacks(
        lambda _: completion(context, "Send Connectors", text, back), refused
    )


def sendConnector(context, rest):
    """
    GET C{sendconnector/NAME/remove} (the confirmation) or
    C{sendconnector/NAME[/TAB]} (the properties).
    """
    if len(rest) == 1:
        return context.redirect(context.url("sendconnector", rest[0], "general"))
    if len(rest) != 2:
        return context.refuse(404, "There is no such page.")
    name, action = rest
    if action == "remove":
        return _confirmRemoval(context, name)
    return sendconnectorproperties.show(context, name, action)


def changeSendConnector(context, rest):
    """
    POST C{sendconnector/NAME/ACTION}.
    """
    if len(rest) != 2:
        return context.refuse(404, "There is no such page.")
    name, action = rest
    if action in ("enable", "disable"):
        return _changed(context, command("Set-SendConnector", name, Enabled=action == "enable"))
    if action == "remove":
        return _changed(context, command("Remove-SendConnector", name))
    return sendconnectorproperties.save(context, name, action)


def _confirmRemoval(context, name):
    def found(connectors):
        connector = connectors[0]
        return context.render(
            "Remove Send Connector",
            tags.p(
                "Are you sure you want to permanently remove the Send connector '",
                tags.strong(connector.Name),
                "'?",
            ),
            context.form(context.url("sendconnector", connector.Name, "remove"))(
                tags.p(class_="buttons")(
                    tags.button("Yes", type="submit", id="yes"),
                    tags.a("No", href=context.url("sendconnectors"), id="no"),
                )
            ),
        )

    return sendconnectorproperties.read(context, name, found)


ROUTES = {
    (b"GET", "sendconnectors"): sendConnectors,
    (b"GET", "sendconnector"): sendConnector,
    (b"POST", "sendconnector"): changeSendConnector,
    **NEW.routes(),
}
NAVIGATION = (("Organization Configuration", "Send Connectors", "sendconnectors"),)
