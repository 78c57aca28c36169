"""
Toolbox > Message Tracking: a search of a transport server's message
tracking log by Get-MessageTrackingLog's parameters (-Sender,
-Recipients, -EventId, -MessageId, -MessageSubject, -Start, -End), its
events in a table, and one message's whole path: every event of its queue
id, in order, on a page of its own.
"""

from urllib.parse import urlencode

from twisted.web.template import tags

from exmta.console.page import command
from exmta.shell.format import formatValue, getProperty

RESULT_SIZE = 1000

EVENT_IDS = ("", "RECEIVE", "SUBMIT", "DELIVER", "SEND", "DEFER", "FAIL", "DSN", "EXPAND", "REDIRECT")

# Form fields: (field, label, Get-MessageTrackingLog's parameter).
FIELDS = (
    ("sender", "Sender", "Sender"),
    ("recipients", "Recipients (comma-separated)", "Recipients"),
    ("messageid", "Message ID", "MessageId"),
    ("subject", "Subject contains", "MessageSubject"),
    ("start", "Start (2026-01-31T08:00:00Z)", "Start"),
    ("end", "End", "End"),
)

COLUMNS = (
    "Timestamp", "EventId", "Source", "Sender", "Recipients", "MessageSubject",
    "RecipientStatus", "ConnectorId", "InternalMessageId",
)
PATH_COLUMNS = (
    "Timestamp", "EventId", "Source", "Recipients", "RecipientStatus", "ConnectorId", "NextHop",
    "ClientIp", "TotalBytes",
)


def searchCommand(context):
    """
    @return: the Get-MessageTrackingLog command the form's fields make,
        or L{None} when none is filled in.
    """
    parameters = {}
    for field, _, parameter in FIELDS:
        value = context.arg(field).strip()
        if not value:
            continue
        if parameter == "Recipients":
            value = [part.strip() for part in value.split(",") if part.strip()]
        parameters[parameter] = value
    eventId = context.arg("eventid").strip()
    if eventId in EVENT_IDS[1:]:
        parameters["EventId"] = eventId
    if not parameters and not context.arg("search"):
        return None
    server = context.arg("server").strip() or None
    return command("Get-MessageTrackingLog", Server=server, ResultSize=RESULT_SIZE, **parameters)


def _form(context, servers):
    fields = []
    for field, label, _ in FIELDS:
        fields.append(
            tags.p(tags.label(label, tags.input(name=field, id=f"track-{field}",
                                                value=context.arg(field))))
        )
    fields.append(
        tags.p(
            tags.label(
                "Event ID",
                tags.select(name="eventid", id="track-eventid")(
                    *(
                        tags.option(
                            eventId or "(any)", value=eventId,
                            **({"selected": "selected"} if eventId == context.arg("eventid") else {}),
                        )
                        for eventId in EVENT_IDS
                    )
                ),
            )
        )
    )
    if len(servers) > 1:
        fields.append(
            tags.p(
                tags.label(
                    "Server",
                    tags.select(name="server", id="track-server")(
                        *(
                            tags.option(name, value=name, **(
                                {"selected": "selected"} if name == context.arg("server") else {}
                            ))
                            for name in servers
                        )
                    ),
                )
            )
        )
    return tags.form(method="get", action=context.url("messagetracking"), id="tracking-search")(
        tags.input(type="hidden", name="search", value="1"),
        tags.div(*fields, class_="fields"),
        tags.p(tags.button("Search", type="submit", id="search")),
    )


def _pathLink(context, event):
    queueId = getProperty(event, "InternalMessageId")
    if not queueId:
        return ""
    arguments = {"id": queueId}
    if context.arg("server"):
        arguments["server"] = context.arg("server")
    return tags.a(
        "Path", href=context.url("messagetracking", "path") + "?" + urlencode(arguments),
        class_="path",
    )


def _table(identifier, columns, events, link=None):
    header = tags.tr(*(tags.th(column) for column in columns), tags.th("") if link else "")
    rows = []
    for event in events:
        cells = [tags.td(formatValue(getProperty(event, c)), class_=c) for c in columns]
        if link:
            cells.append(tags.td(link(event)))
        rows.append(tags.tr(*cells))
    return tags.table(header, *rows, id=identifier, class_="data")


def tracking(context, rest):
    if rest == ["path"]:
        return path(context)
    if rest:
        return context.refuse(404, "There is no such page.")

    def listed(servers):
        names = [getProperty(server, "Name") for server in servers]
        form = _form(context, names)
        text = searchCommand(context)
        if text is None:
            return context.render("Message Tracking", form)

        def shown(events):
            return context.render(
                "Message Tracking",
                form,
                tags.pre(text, class_="command", id="command"),
                tags.p(f"{len(events)} events found.", id="found"),
                _table("events", COLUMNS, events, lambda event: _pathLink(context, event)),
            )

        def refused(failure):
            return context.render(
                "Message Tracking",
                form,
                tags.pre(text, class_="command", id="command"),
                tags.p(failure.getErrorMessage(), class_="error", id="error"),
                code=400,
            )

        return context.invoke(text).addCallbacks(shown, refused)

    return context.invoke("Get-TransportServer").addCallback(listed)


def path(context):
    """
    One message's path: every tracking event of its queue id, in order.
    """
    queueId = context.arg("id").strip()
    if not queueId:
        return context.refuse(400, "Name the message (its InternalMessageId).")
    text = command(
        "Get-MessageTrackingLog",
        Server=context.arg("server").strip() or None,
        InternalMessageId=queueId,
        ResultSize="Unlimited",
    )

    def shown(events):
        if not events:
            return context.render(
                "Message path", tags.p(f"No event names the message {queueId}.", id="error",
                                       class_="error"),
                code=404,
            )
        first = events[0]
        messageId = next(
            (getProperty(e, "MessageId") for e in events if getProperty(e, "MessageId")), None
        )
        summary = tags.table(id="message")(
            *(
                tags.tr(tags.th(label), tags.td(formatValue(value)))
                for label, value in (
                    ("InternalMessageId", queueId),
                    ("MessageId", messageId),
                    ("Sender", getProperty(first, "Sender")),
                    ("MessageSubject", getProperty(first, "MessageSubject")),
                    ("Recipients", getProperty(first, "Recipients")),
                )
            )
        )
        same = ""
        if messageId:
            same = tags.p(
                tags.a(
                    "Every event with this Message-ID",
                    href=context.url("messagetracking") + "?"
                    + urlencode({"messageid": messageId, "search": "1"}),
                    id="same-message-id",
                )
            )
        return context.render(
            "Message path",
            tags.pre(text, class_="command", id="command"),
            summary,
            same,
            _table("path", PATH_COLUMNS, events),
        )

    return context.invoke(text).addCallbacks(
        shown,
        lambda failure: context.render(
            "Message path", tags.p(failure.getErrorMessage(), class_="error", id="error"),
            code=400,
        ),
    )


ROUTES = {(b"GET", "messagetracking"): tracking}
NAVIGATION = (("Toolbox", "Message Tracking", "messagetracking"),)
