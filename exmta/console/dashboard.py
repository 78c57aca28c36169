"""
The Dashboard, the console's landing page: for each transport server, its
state, its queues' lengths and its oldest message's age (Get-Queue and
Get-Message through the admin endpoint), and per connector the messages
received, sent, deferred and failed over the last hour and the last day
(Get-MessageTrackingStatistics, which reads each tracking log line once);
below, the organization overview (L{exmta.console.overview}).

It refreshes itself: the console's script fetches C{dashboard.json} (the
same numbers, keyed as the page's C{data-live} cells) every
L{REFRESH_SECONDS}; without the script, a C{<meta http-equiv=refresh>}
inside C{<noscript>} reloads the page every L{RELOAD_SECONDS}.
"""

import datetime

from twisted.internet.defer import Deferred
from twisted.web.template import tags

from exmta.console.enhance import answerJson
from exmta.console.overview import overviewSections
from exmta.console.page import command
from exmta.shell.format import getProperty
from exmta.shell.runtime import ShellError

REFRESH_SECONDS = 10
RELOAD_SECONDS = 60

# The dashboard's columns and the tracking events each counts.
COLUMNS = (
    ("received", "Received", ("RECEIVE",)),
    ("sent", "Sent", ("SEND", "DELIVER")),
    ("deferred", "Deferred", ("DEFER",)),
    ("failed", "Failed", ("FAIL",)),
)
PERIODS = (("hour", "last hour", 3600), ("day", "last day", 86400))
ALL = "(all connectors)"
NONE = "(no connector)"


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def age(seconds):
    """
    @return: a duration as the dashboard shows it (C{2 h 5 min}).
    """
    seconds = max(0, int(seconds))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


async def _invoke(context, text):
    """
    @return: C{text}'s output, or the Shell's error message.
    """
    try:
        return await context.invoke(text), None
    except ShellError as error:
        return None, error.message


async def numbers(context):
    """
    @return: the dashboard's numbers: a list, per transport server, of
        dicts (C{name}, C{state}, C{problem}, C{queues}, C{queued},
        C{oldest}, C{counts}).
    """
    now = context.console.reactor.seconds()
    servers, problem = await _invoke(context, "Get-TransportServer")
    if servers is None:
        raise ShellError(problem)
    result = []
    for server in servers:
        name = getProperty(server, "Name")
        entry = {"name": name, "state": "Running", "problem": None, "queues": [],
                 "queued": None, "oldest": None}
        queues, problem = await _invoke(context, command("Get-Queue", Server=name))
        if queues is None:
            entry["state"], entry["problem"] = "Not running", problem
        else:
            entry["queues"] = [
                (getProperty(q, "Identity"), getProperty(q, "Status"), getProperty(q, "MessageCount"))
                for q in queues
            ]
            entry["queued"] = sum(count for _, _, count in entry["queues"])
            oldest, _ = await _invoke(
                context,
                command("Get-Message", Server=name, SortOrder=["+DateReceived"], ResultSize=1,
                        ReturnPageInfo=True),
            )
            if oldest and len(oldest) > 1:
                received = getProperty(oldest[1], "DateReceived")
                if received is not None:
                    entry["oldest"] = now - received.timestamp()
        counts = {}
        for period, _, seconds in PERIODS:
            statistics, problem = await _invoke(
                context,
                command("Get-MessageTrackingStatistics", Server=name, Start=_iso(now - seconds),
                        End=_iso(now + 60)),
            )
            for statistic in statistics or ():
                connector = getProperty(statistic, "ConnectorId") or NONE
                eventId = getProperty(statistic, "EventId")
                for key, _, events in COLUMNS:
                    if eventId in events:
                        number = getProperty(statistic, "Count")
                        for row in (connector, ALL):
                            cell = counts.setdefault(row, {}).setdefault(period, {})
                            cell[key] = cell.get(key, 0) + number
        entry["counts"] = counts
        result.append(entry)
    return result


def liveValues(servers):
    """
    @return: {data-live key: text} of the dashboard's numbers.
    """
    values = {}
    for server in servers:
        name = server["name"]
        values[f"{name}:state"] = server["state"]
        values[f"{name}:queued"] = "" if server["queued"] is None else str(server["queued"])
        values[f"{name}:oldest"] = "" if server["oldest"] is None else age(server["oldest"])
        for identity, status, count in server["queues"]:
            values[f"queue:{identity}:status"] = status
            values[f"queue:{identity}:count"] = str(count)
        for connector, periods in server["counts"].items():
            for period, _, _ in PERIODS:
                for key, _, _ in COLUMNS:
                    values[f"{name}:{connector}:{period}:{key}"] = str(
                        periods.get(period, {}).get(key, 0)
                    )
    return values


def _live(values, key, identifier=None):
    attributes = {"data-live": key}
    if identifier:
        attributes["id"] = identifier
    return tags.td(values.get(key, ""), **attributes)


def _server(server, values):
    name = server["name"]
    state = tags.table(id=f"server-{name}", class_="server")(
        tags.tr(tags.th("Server"), tags.th("State"), tags.th("Messages queued"),
                tags.th("Oldest message")),
        tags.tr(
            tags.td(name),
            _live(values, f"{name}:state"),
            _live(values, f"{name}:queued"),
            _live(values, f"{name}:oldest"),
        ),
    )
    parts = [tags.h2(name), state]
    if server["problem"]:
        parts.append(tags.p(server["problem"], class_="error"))
    if server["queues"]:
        parts.append(
            tags.table(id=f"queues-{name}", class_="queues")(
                tags.tr(tags.th("Queue"), tags.th("Status"), tags.th("MessageCount")),
                *(
                    tags.tr(
                        tags.td(identity),
                        _live(values, f"queue:{identity}:status"),
                        _live(values, f"queue:{identity}:count"),
                    )
                    for identity, _, _ in server["queues"]
                ),
            )
        )
    header = [tags.th("Connector")]
    for _, label, _ in PERIODS:
        header.extend(tags.th(f"{column} ({label})") for _, column, _ in COLUMNS)
    rows = []
    connectors = sorted(c for c in server["counts"] if c != ALL) + [ALL]
    for connector in connectors:
        cells = [tags.td(connector)]
        for period, _, _ in PERIODS:
            for key, _, _ in COLUMNS:
                cells.append(_live(values, f"{name}:{connector}:{period}:{key}"))
        rows.append(tags.tr(*cells))
    parts.append(tags.table(id=f"traffic-{name}", class_="traffic")(tags.tr(*header), *rows))
    return parts


def dashboard(context, rest):
    if rest:
        return context.refuse(404, "There is no such page.")
    return Deferred.fromCoroutine(_dashboard(context))


async def _dashboard(context):
    try:
        servers = await numbers(context)
    except ShellError as error:
        return context.render("Dashboard", tags.p(error.message, class_="error", id="error"))
    values = liveValues(servers)
    body = [
        tags.div(
            id="live",
            **{"data-source": context.url("dashboard.json"),
               "data-interval": str(REFRESH_SECONDS)},
        )
    ]
    for server in servers:
        body.extend(_server(server, values))
    body.append(tags.h2("Organization", id="organization"))
    body.extend(await overviewSections(context))
    refresh = tags.noscript(tags.meta(**{"http-equiv": "refresh", "content": str(RELOAD_SECONDS)}))
    return context.render("Dashboard", *body, head=(refresh,))


def dashboardJson(context, rest):
    if rest:
        return context.refuse(404, "There is no such page.")

    async def answer():
        try:
            values = liveValues(await numbers(context))
        except ShellError as error:
            values = {"error": error.message}
        return answerJson(context, values)

    return Deferred.fromCoroutine(answer())


ROUTES = {(b"GET", ""): dashboard, (b"GET", "dashboard.json"): dashboardJson}
