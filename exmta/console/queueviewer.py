"""
Toolbox > Queue Viewer: a running server's queues (Get-Queue) and their
messages (Get-Message), with the EMC's actions, each the Shell's cmdlet:
Suspend-Queue, Resume-Queue, Retry-Queue; Suspend-Message,
Resume-Message, Remove-Message with and without a non-delivery report
(after a confirmation page), and Export-Message of a suspended message
(a download).  Actions take the rows ticked in the table.

The message list is filtered and paged by the server: the filter form's
fields become Get-Message's C{-Filter} (each value quoted by
L{exmta.console.page.quote}), and a page is C{-ResultSize 50
-BookmarkIndex N -ReturnPageInfo $true}, so a page of a queue of 100,000
messages carries 50 rows.
"""

from urllib.parse import quote as urlquote, urlencode

from twisted.web.server import NOT_DONE_YET
from twisted.web.template import tags

from exmta.console.enhance import answerJson
from exmta.console.page import command, completion, quote
from exmta.shell.format import formatValue, getProperty

PAGE_SIZE = 50

QUEUE_COLUMNS = (
    "Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain", "NextRetryTime",
    "LastError",
)
MESSAGE_COLUMNS = (
    "FromAddress", "Status", "Size", "Subject", "DateReceived", "Recipients", "Queue",
    "LastError",
)
STATUSES = ("", "Active", "Ready", "Retry", "Suspended", "PendingSuspend", "PendingRemove")

# Filter form fields: (field, label, how its value becomes a condition).
FILTER_FIELDS = (
    ("from", "From address"),
    ("to", "Recipient"),
    ("subject", "Subject contains"),
    ("minsize", "Size at least (KB)"),
    ("after", "Received on or after"),
    ("before", "Received before"),
)

QUEUE_ACTIONS = {
    "suspend": ("Suspend", "Suspend-Queue"),
    "resume": ("Resume", "Resume-Queue"),
    "retry": ("Retry", "Retry-Queue"),
}
MESSAGE_ACTIONS = {
    "suspend": ("Suspend", lambda identity: command("Suspend-Message", Identity=identity)),
    "resume": ("Resume", lambda identity: command("Resume-Message", Identity=identity)),
    "remove-ndr": (
        "Remove (with NDR)",
        lambda identity: command("Remove-Message", Identity=identity, WithNDR=True),
    ),
    "remove": (
        "Remove (without NDR)",
        lambda identity: command("Remove-Message", Identity=identity, WithNDR=False),
    ),
}
CONFIRM = {
    "remove-ndr": "Remove the selected messages? Their senders get a non-delivery report.",
    "remove": "Remove the selected messages? Their senders are not told.",
}


class FilterError(ValueError):
    """
    A filter field the form cannot turn into a condition.
    """


def messageFilter(context):
    """
    @return: the text of Get-Message's C{-Filter} the filter form's fields
        make, or L{None} for no filter.
    @raise FilterError: for a size that is not a number or a status that is
        not one.
    """
    conditions = []
    for field, name in (("from", "FromAddress"), ("to", "Recipients")):
        value = context.arg(field).strip()
        if value:
            operator = "-like" if "*" in value or "?" in value else "-eq"
            conditions.append(f"{name} {operator} {quote(value)}")
    subject = context.arg("subject").strip()
    if subject:
        conditions.append(f"Subject -like {quote('*' + subject + '*')}")
    status = context.arg("status").strip()
    if status:
        if status not in STATUSES:
            raise FilterError(f"{status!r} is not a message status")
        conditions.append(f"Status -eq {quote(status)}")
    size = context.arg("minsize").strip()
    if size:
        if not size.isdigit():
            raise FilterError("Size at least: give a whole number of KB.")
        conditions.append(f"Size -ge {int(size) * 1024}")
    for field, operator in (("after", "-ge"), ("before", "-lt")):
        value = context.arg(field).strip()
        if value:
            conditions.append(f"DateReceived {operator} {quote(value)}")
    return " -and ".join(conditions) or None


def _filterArguments(context):
    names = ["queue", "status"] + [field for field, _ in FILTER_FIELDS]
    return {name: context.arg(name) for name in names if context.arg(name)}


def _link(context, path, arguments):
    query = urlencode(arguments)
    return context.url(*path) + ("?" + query if query else "")


def _cell(column, value):
    return tags.td(formatValue(value), class_=column)


def _tabs(context):
    return tags.p(
        tags.a("Queues", href=context.url("queueviewer"), id="queues-tab"),
        " | ",
        tags.a("Messages", href=context.url("queueviewer", "messages"), id="messages-tab"),
    )


def _failure(context, title, failure):
    return context.render(
        title, _tabs(context), tags.p(failure.getErrorMessage(), class_="error", id="error")
    )


# Queues


def queues(context, rest):
    if rest == ["messages"]:
        return messages(context)
    if rest == ["export"]:
        return export(context)
    if rest:
        return context.refuse(404, "There is no such page.")

    def shown(objects):
        header = tags.tr(tags.th(""), *(tags.th(column) for column in QUEUE_COLUMNS))
        rows = []
        for queue in objects:
            identity = getProperty(queue, "Identity")
            cells = [tags.td(_tick(context, identity))]
            for column in QUEUE_COLUMNS:
                value = getProperty(queue, column)
                if column == "Identity":
                    cells.append(
                        tags.td(
                            tags.a(
                                identity,
                                href=_link(context, ("queueviewer", "messages"),
                                           {"queue": identity}),
                            )
                        )
                    )
                elif column in ("Status", "MessageCount"):
                    cells.append(
                        tags.td(formatValue(value), **{"data-live": f"{column}:{identity}"})
                    )
                else:
                    cells.append(_cell(column, value))
            rows.append(tags.tr(*cells))
        table = tags.table(header, *rows, id="queues", class_="data")
        return context.render(
            "Queue Viewer",
            _tabs(context),
            tags.div(id="live", **{"data-source": context.url("queueviewer.json")}),
            _actionForm(context, ("queueviewer", "queues"), table, QUEUE_ACTIONS),
        )

    return context.invoke("Get-Queue").addCallbacks(
        shown, lambda failure: _failure(context, "Queue Viewer", failure)
    )


def liveCounts(context, rest):
    """
    The queues' status and message counts as JSON, for the page's script.
    """
    if rest:
        return context.refuse(404, "There is no such page.")

    def answer(objects):
        counts = {}
        for queue in objects:
            identity = getProperty(queue, "Identity")
            counts[f"Status:{identity}"] = getProperty(queue, "Status")
            counts[f"MessageCount:{identity}"] = str(getProperty(queue, "MessageCount"))
        return answerJson(context, counts)

    return context.invoke("Get-Queue").addCallbacks(
        answer, lambda failure: answerJson(context, {"error": failure.getErrorMessage()})
    )


def _tick(context, identity):
    if not context.canChange:
        return ""
    return tags.input(type="checkbox", name="identity", value=identity, title=identity)


def _actionForm(context, path, table, actions, back=None):
    if not context.canChange:
        return table
    buttons = []
    for action, (label, _) in actions.items():
        attributes = {"type": "submit", "name": "action", "value": action, "id": f"action-{action}"}
        if action in CONFIRM:
            attributes["data-confirm"] = CONFIRM[action]
        buttons.append(tags.button(label, **attributes))
    return context.form(context.url(*path), id="actions")(
        tags.input(type="hidden", name="back", value=back or context.url(*path[:1])),
        tags.p(*buttons, class_="buttons"),
        table,
    )


def queueAction(context, rest):
    if rest == ["messages"]:
        return messageAction(context)
    if rest != ["queues"]:
        return context.refuse(404, "There is no such page.")
    action = context.arg("action")
    if action not in QUEUE_ACTIONS:
        return context.refuse(400, "Choose Suspend, Resume or Retry.")
    identities = context.args("identity")
    if not identities:
        return context.refuse(400, "Select one or more queues first.")
    cmdlet = QUEUE_ACTIONS[action][1]
    return _run(context, "; ".join(command(cmdlet, Identity=i) for i in identities))


def _run(context, text):
    back = context.arg("back")
    if not back.startswith(context.url("queueviewer")):
        back = context.url("queueviewer")
    link = tags.p(tags.a("Back to the Queue Viewer", href=back, id="back-to-viewer"))
    return context.change(text, reload=False).addCallbacks(
        lambda _: completion(context, "Queue Viewer", text, link),
        lambda failure: context.render(
            "Queue Viewer",
            tags.p(failure.getErrorMessage(), class_="error", id="error"),
            tags.pre(text, class_="command"),
            link,
            code=400,
        ),
    )


# Messages


def messages(context):
    try:
        filterText = messageFilter(context)
    except FilterError as error:
        return context.render(
            "Queue Viewer", _tabs(context), _filterForm(context),
            tags.p(str(error), class_="error", id="error"), code=400,
        )
    start = context.arg("start", "1")
    start = int(start) if start.isdigit() and int(start) > 0 else 1
    queue = context.arg("queue").strip() or None
    if queue and filterText:
        # -Queue and -Filter cannot be used together.
        filterText = f"Queue -eq {quote(queue)} -and {filterText}"
        queue = None
    text = command(
        "Get-Message",
        Queue=queue,
        Filter=filterText,
        ResultSize=PAGE_SIZE,
        BookmarkIndex=start,
        ReturnPageInfo=True,
    )

    def shown(objects):
        info, *found = objects
        total = getProperty(info, "TotalCount")
        arguments = _filterArguments(context)
        here = _link(context, ("queueviewer", "messages"), {**arguments, "start": start})
        header = tags.tr(tags.th(""), *(tags.th(column) for column in MESSAGE_COLUMNS), tags.th(""))
        rows = []
        for message in found:
            identity = getProperty(message, "Identity")
            cells = [tags.td(_tick(context, identity))]
            cells.extend(_cell(column, getProperty(message, column)) for column in MESSAGE_COLUMNS)
            export = ""
            if getProperty(message, "Status") == "Suspended" and context.canChange:
                export = tags.a(
                    "Export",
                    href=_link(context, ("queueviewer", "export"), {"identity": identity}),
                    class_="export",
                )
            cells.append(tags.td(export))
            rows.append(tags.tr(*cells, id=identity))
        table = tags.table(header, *rows, id="messages", class_="data")
        return context.render(
            "Queue Viewer",
            _tabs(context),
            _filterForm(context),
            _pager(context, arguments, start, len(found), total),
            _actionForm(context, ("queueviewer", "messages"), table, MESSAGE_ACTIONS, here),
        )

    return context.invoke(text).addCallbacks(
        shown, lambda failure: _failure(context, "Queue Viewer", failure)
    )


def _filterForm(context):
    fields = []
    for field, label in FILTER_FIELDS:
        fields.append(
            tags.label(label, tags.input(name=field, id=f"filter-{field}",
                                         value=context.arg(field)))
        )
    fields.append(
        tags.label(
            "Status",
            tags.select(name="status", id="filter-status")(
                *(
                    tags.option(status or "(any)", value=status,
                                **({"selected": "selected"} if status == context.arg("status") else {}))
                    for status in STATUSES
                )
            ),
        )
    )
    queue = context.arg("queue")
    shown = tags.p("Queue: ", tags.strong(queue, id="queue-shown")) if queue else ""
    return tags.form(method="get", action=context.url("queueviewer", "messages"), id="filter")(
        shown,
        tags.input(type="hidden", name="queue", value=context.arg("queue")),
        tags.div(*fields, class_="fields"),
        tags.p(tags.button("Apply filter", type="submit", id="apply-filter")),
    )


def _pager(context, arguments, start, count, total):
    def page(label, index, identifier):
        return tags.a(
            label,
            href=_link(context, ("queueviewer", "messages"), {**arguments, "start": index}),
            id=identifier,
        )

    links = []
    if start > 1:
        links += [page("First", 1, "first-page"), " ",
                  page("Previous", max(1, start - PAGE_SIZE), "previous-page"), " "]
    if start - 1 + count < total:
        last = ((total - 1) // PAGE_SIZE) * PAGE_SIZE + 1
        links += [page("Next", start + PAGE_SIZE, "next-page"), " ",
                  page("Last", last, "last-page")]
    shown = f"{start:,}-{start - 1 + count:,}" if count else "none"
    return tags.p(tags.span(f"Messages {shown} of {total:,}", id="page-info"), " ", *links)


def messageAction(context):
    action = context.arg("action")
    if action not in MESSAGE_ACTIONS:
        return context.refuse(400, "Choose Suspend, Resume or Remove.")
    identities = context.args("identity")
    if not identities:
        return context.refuse(400, "Select one or more messages first.")
    if action in CONFIRM and context.arg("confirmed") != "yes":
        return _confirm(context, action, identities)
    build = MESSAGE_ACTIONS[action][1]
    return _run(context, "; ".join(build(identity) for identity in identities))


def _confirm(context, action, identities):
    """
    The page that asks before messages are removed (the script asks with a
    dialog instead).
    """
    label = MESSAGE_ACTIONS[action][0]
    back = context.arg("back") or context.url("queueviewer", "messages")
    if not back.startswith(context.url("queueviewer")):
        back = context.url("queueviewer", "messages")
    return context.render(
        "Queue Viewer",
        tags.p(CONFIRM[action], id="confirm-question"),
        tags.ul(*(tags.li(identity) for identity in identities)),
        context.form(context.url("queueviewer", "messages"))(
            tags.input(type="hidden", name="action", value=action),
            tags.input(type="hidden", name="confirmed", value="yes"),
            tags.input(type="hidden", name="back", value=back),
            *(tags.input(type="hidden", name="identity", value=i) for i in identities),
            tags.p(
                tags.button(label, type="submit", id="confirm"),
                " ",
                tags.a("Cancel", href=back, id="cancel"),
            ),
        ),
    )


def export(context):
    """
    Export-Message of one suspended message, as a download of its .eml.
    """
    # A message's content is not the organization's configuration: like
    # Exchange's View-Only role groups, viewers may not read it.
    if not context.canChange:
        return context.refuse(
            403, "Members of View-Only Organization Management cannot export messages."
        )
    identity = context.arg("identity")
    if not identity:
        return context.refuse(400, "Name the message to export.")

    def download(objects):
        [exported] = objects
        if context.gone:
            return NOT_DONE_YET
        name = identity.rsplit("\\", 1)[-1]
        request = context.request
        request.setHeader(b"content-type", b"message/rfc822")
        request.setHeader(
            b"content-disposition", f'attachment; filename="{urlquote(name)}.eml"'.encode()
        )
        request.write(getProperty(exported, "FileData"))
        request.finish()
        return NOT_DONE_YET

    return context.invoke(command("Export-Message", Identity=identity)).addCallbacks(
        download, lambda failure: _failure(context, "Queue Viewer", failure)
    )


ROUTES = {
    (b"GET", "queueviewer"): queues,
    (b"POST", "queueviewer"): queueAction,
    (b"GET", "queueviewer.json"): liveCounts,
}
NAVIGATION = (("Toolbox", "Queue Viewer", "queueviewer"),)
