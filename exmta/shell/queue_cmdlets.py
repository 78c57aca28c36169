"""
The queue cmdlets, run against a transport server that is running, and
Get-MessageTrackingLog, which reads its tracking log files:

    Get-Queue [[-Identity] Server\\Queue] [-Filter {...}] [-Server S] [-ResultSize N]
    Get-Message [[-Identity] Server\\Queue\\QueueId | -Queue Server\\Queue | -Filter {...}]
                [-Server S] [-ResultSize N] [-SortOrder +Prop,-Prop]
                [-BookmarkIndex N | -BookmarkObject message] [-IncludeBookmark $false]
                [-ReturnPageInfo $true]
    Retry-Queue [-Identity] Server\\Queue | -Filter {...} [-Resubmit $true] [-Server S]
    Suspend-Queue / Resume-Queue [-Identity] Server\\Queue | -Filter {...} [-Server S]
    Suspend-Message / Resume-Message [-Identity] ... | -Filter {...} [-Server S]
    Remove-Message [-Identity] ... | -Filter {...} [-WithNDR $false] [-Server S]
    Export-Message [-Identity] Server\\Queue\\QueueId [-Path file.eml] [-Server S]
        Export-Message -Identity X | AssembleMessage -Path file.eml
    Get-MessageTrackingLog [-Sender a] [-Recipients a,b] [-MessageId id]
        [-InternalMessageId qid] [-MessageSubject text] [-EventId SEND]
        [-Start date] [-End date] [-Server S] [-ResultSize N|Unlimited]
    Get-MessageTrackingStatistics [-Start date] [-End date] [-Server S]

Which server: C{-Server}, else the server an identity names
(C{HubB\\ToInternet}), else the one C{twistd exmta} would be without
C{--server} (L{exmta.config.servers.chooseServer}).  The queue cmdlets talk to
its admin endpoint (L{exmta.admin.client}); they need the Shell to run as the
user the server runs as (or root), and say so, or that the server is not
running, when they cannot reach it.

C{-Filter} takes Exchange's OPATH filters over the objects' properties
(C{{FromAddress -eq "kim@fabrikam.com" -and Status -eq "Retry"}}), which
the server evaluates (L{exmta.opath.query}); the Shell's
variables in it are replaced by their values first.  C{-Identity},
C{-Queue} and C{-Filter} are mutually exclusive, as in Exchange.
"""

import base64
import datetime
import os
import re
import ssl
from dataclasses import dataclass

from exmta.admin.client import AdminClient, AdminUnavailable, RemoteAdminClient
from exmta.admin.protocol import AdminError, adminSocketPath
from exmta.config import loadOrganization
from exmta.errors import ConfigError
from exmta.opath import parseDateTime
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf
from exmta.tracking import searchTrackingLog, trackingCounts

# Get-MessageTrackingLog's and Get-Queue's default -ResultSize, as in Exchange.
DEFAULT_RESULT_SIZE = 1000


@dataclass
class QueueInfo:
    DefaultDisplayPropertySet = ("Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain")

    Identity: str
    DeliveryType: str
    Status: str
    MessageCount: int
    NextHopDomain: str
    NextHopConnector: str | None
    NextRetryTime: datetime.datetime | None
    LastError: str | None


@dataclass
class MessageInfo:
    DefaultDisplayPropertySet = ("Identity", "FromAddress", "Status", "Queue", "Subject")

    Identity: str
    Subject: str | None
    InternetMessageId: str | None
    FromAddress: str
    Status: str
    Size: int
    MessageSourceName: str
    SourceIP: str | None
    DateReceived: datetime.datetime | None
    ExpirationTime: datetime.datetime | None
    LastError: str | None
    RetryCount: int
    Recipients: tuple
    Queue: str
    InternalMessageId: str


@dataclass
class ExportedMessage:
    """
    Export-Message's output: the message's bytes, for AssembleMessage.
    """

    DefaultDisplayPropertySet = ("Identity", "Size")

    Identity: str
    Size: int
    FileData: bytes


@dataclass
class MessageTrackingEvent:
    DefaultDisplayPropertySet = ("Timestamp", "EventId", "Source", "Sender", "Recipients")

    Timestamp: datetime.datetime
    EventId: str
    Source: str | None
    Sender: str | None
    Recipients: tuple
    RecipientStatus: str | None
    MessageId: str | None
    InternalMessageId: str | None
    MessageSubject: str | None
    TotalBytes: int | None
    ConnectorId: str | None
    NextHop: str | None
    ClientIp: str | None
    ServerIp: str | None
    Reference: str | None
    RelatedRecipientAddress: tuple
    ServerHostname: str | None = None


# Reaching the server


def _organization(context):
    try:
        return loadOrganization(context.configPath)
    except ConfigError as error:
        raise CmdletError(str(error)) from None
    except OSError as error:
        raise CmdletError(f"cannot read {context.configPath}: {error.strerror}") from None


def _transportServer(context, server=None, identity=None):
    """
    The TransportServer a cmdlet acts on: C{-Server}, else the one the
    identity's first part names, else L{chooseServer}'s.
    """
    from exmta.config.servers import chooseServer

    organization = _organization(context)
    if server is None and identity is not None and "\\" in identity:
        first = identity.split("\\", 1)[0]
        for candidate in organization.transportServers.values():
            if candidate.name.lower() == first.lower():
                server = candidate.name
    try:
        return chooseServer(organization, server)
    except ConfigError as error:
        raise CmdletError(str(error).replace("--server NAME", "-Server NAME")) from None


def _call(context, command, server=None, named=None, **arguments):
    """
    Run C{command} on the admin endpoint of the TransportServer C{server},
    else the one the identity C{named} names, else the default one.
    """
    transportServer = _transportServer(context, server, named)
    client = _clientFor(context, transportServer)
    try:
        return client.call(command, **arguments)
    except AdminUnavailable as error:
        raise CmdletError(
            f"Cannot reach TransportServer {transportServer.name}: {error}. "
            f"Start it with: twistd exmta -c {context.configPath} --server {transportServer.name}"
        ) from None
    except AdminError as error:
        raise CmdletError(error.message) from None


def _clientFor(context, transportServer):
    """
    The admin client of C{transportServer}: its UNIX socket when it is on
    this machine (the socket is there) or has no AdminBindings, else its
    AdminBindings over mutual TLS.
    """
    path = adminSocketPath(transportServer)
    if not _isRemote(transportServer):
        return AdminClient(path)
    binding = transportServer.adminBindings[0]
    host = transportServer.fqdn if binding.isWildcard else binding.host
    context = _localCertificate(context, transportServer)
    return RemoteAdminClient((host, binding.port), context, transportServer.fqdn)


def _isRemote(transportServer):
    """
    @return: whether C{transportServer} is on another machine: it has
        AdminBindings and its admin socket is not here.
    """
    return bool(transportServer.adminBindings) and not os.path.exists(
        adminSocketPath(transportServer)
    )


def _localCertificate(context, transportServer):
    """
    @return: an L{ssl.SSLContext} showing the certificate of a server of
        this machine (the first of the organization whose certificate and
        key the Shell can read) and trusting the organization's authority.
    """
    for local in _organization(context).transportServers.values():
        paths = (local.tlsCertificatePath, local.tlsPrivateKeyPath, local.tlsCertificateAuthorityPath)
        if None not in paths and all(os.access(path, os.R_OK) for path in paths):
            tls = ssl.create_default_context(cafile=local.tlsCertificateAuthorityPath)
            tls.load_cert_chain(local.tlsCertificatePath, local.tlsPrivateKeyPath)
            return tls
    raise CmdletError(
        f"TransportServer {transportServer.name} is not on this machine, and no server's "
        "certificate is here to reach its AdminBindings with: run the Shell where a "
        "server's certificate is (New-ExchangeCertificate, Import-ExchangeCertificate)"
    )


def _identity(value):
    identity = identityOf(value)
    return None if identity is None else str(identity)


_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _filterText(context, value):
    """
    The text of a -Filter (a script block or a string) with the Shell's
    variables replaced by their values, quoted.
    """
    if value is None:
        return None
    text = str(value)

    def substitute(match):
        name = match.group(1).lower()
        if name in ("true", "false", "null") or name not in context.variables:
            return match.group(0)
        item = context.variables[name]
        if isinstance(item, bool) or item is None:
            return {True: "$true", False: "$false", None: "$null"}[item]
        if isinstance(item, (int, float)):
            return str(item)
        return "'" + str(_identity(item)).replace("'", "''") + "'"

    return _VARIABLE.sub(substitute, text)


def _resultSize(value, default=DEFAULT_RESULT_SIZE):
    if value is None:
        return default
    if isinstance(value, str) and value.lower() == "unlimited":
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise CmdletError(f"Cannot bind parameter 'ResultSize': {value!r} is not a number or Unlimited") from None
    if size < 0:
        raise CmdletError("Cannot bind parameter 'ResultSize': it cannot be negative")
    return size


def _limited(context, objects, resultSize):
    if resultSize is not None and len(objects) > resultSize:
        context.writeWarning(
            f"There are more results, use ResultSize to view more results ({resultSize} shown)."
        )
        return objects[:resultSize]
    return objects


def _localTime(text):
    if text is None:
        return None
    return datetime.datetime.fromtimestamp(parseDateTime(text))


def _queueInfo(row):
    return QueueInfo(
        Identity=row["Identity"],
        DeliveryType=row["DeliveryType"],
        Status=row["Status"],
        MessageCount=row["MessageCount"],
        NextHopDomain=row["NextHopDomain"],
        NextHopConnector=row.get("NextHopConnector"),
        NextRetryTime=_localTime(row.get("NextRetryTime")),
        LastError=row.get("LastError"),
    )


def _messageInfo(row):
    return MessageInfo(
        Identity=row["Identity"],
        Subject=row.get("Subject"),
        InternetMessageId=row.get("InternetMessageId"),
        FromAddress=row["FromAddress"],
        Status=row["Status"],
        Size=row["Size"],
        MessageSourceName=row["MessageSourceName"],
        SourceIP=row.get("SourceIP"),
        DateReceived=_localTime(row.get("DateReceived")),
        ExpirationTime=_localTime(row.get("ExpirationTime")),
        LastError=row.get("LastError"),
        RetryCount=row.get("RetryCount", 0),
        Recipients=tuple(row.get("Recipients", ())),
        Queue=row["Queue"],
        InternalMessageId=row["InternalMessageId"],
    )


def _exclusive(**given):
    named = [name for name, value in given.items() if value is not None]
    if len(named) > 1:
        raise CmdletError(
            "Parameter set cannot be resolved using the specified named parameters: "
            + " and ".join(f"-{name}" for name in named)
            + " cannot be used together."
        )


def _identityOrFilter(identity, filter):
    _exclusive(Identity=identity, Filter=filter)
    if identity is None and filter is None:
        raise CmdletError("Give -Identity or -Filter.")


# Queues


@cmdlet(
    "Get-Queue",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Server"),
    Parameter("ResultSize"),
)
def getQueue(context, Identity=None, Filter=None, Server=None, ResultSize=None):
    identity = _identity(Identity)
    _exclusive(Identity=identity, Filter=Filter)
    rows = _call(
        context, "getQueue", Server, identity,
        identity=identity, filter=_filterText(context, Filter),
    )
    return _limited(context, [_queueInfo(row) for row in rows], _resultSize(ResultSize))


def _queueTargets(context, identity, filter, server):
    """
    @return: the identities of the queues -Identity or -Filter names.
    """
    identity = _identity(identity)
    _identityOrFilter(identity, filter)
    if identity is not None:
        return [identity]
    rows = _call(context, "getQueue", server, filter=_filterText(context, filter))
    return [row["Identity"] for row in rows]


@cmdlet(
    "Retry-Queue",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Resubmit"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def retryQueue(context, Identity=None, Filter=None, Resubmit=False, Server=None):
    for identity in _queueTargets(context, Identity, Filter, Server):
        if context.shouldProcess(identity, "Retry-Queue"):
            _call(context, "retryQueue", Server, identity, identity=identity, resubmit=bool(Resubmit))


@cmdlet(
    "Suspend-Queue",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def suspendQueue(context, Identity=None, Filter=None, Server=None):
    for identity in _queueTargets(context, Identity, Filter, Server):
        if context.shouldProcess(identity, "Suspend-Queue"):
            _call(context, "suspendQueue", Server, identity, identity=identity)


@cmdlet(
    "Resume-Queue",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def resumeQueue(context, Identity=None, Filter=None, Server=None):
    for identity in _queueTargets(context, Identity, Filter, Server):
        if context.shouldProcess(identity, "Resume-Queue"):
            _call(context, "resumeQueue", Server, identity, identity=identity)


# Messages


@dataclass
class MessagePageInfo:
    """
    What C{Get-Message -ReturnPageInfo $true} outputs before the page's
    messages: how many messages the whole result has, and the 1-based
    index of the page's first (the C{-BookmarkIndex} of this page).
    """

    DefaultDisplayPropertySet = ("TotalCount", "BookmarkIndex")

    TotalCount: int
    BookmarkIndex: int


def _whole(name, value, least):
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CmdletError(f"Cannot bind parameter '{name}': {value!r} is not a number") from None
    if number < least:
        raise CmdletError(f"Cannot bind parameter '{name}': it is at least {least}")
    return number


def _boolean(name, value):
    if not isinstance(value, bool):
        raise CmdletError(f"Cannot bind parameter '{name}': {value!r} is not $true or $false")
    return value


@cmdlet(
    "Get-Message",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Queue"),
    Parameter("Filter"),
    Parameter("Server"),
    Parameter("ResultSize"),
    Parameter("IncludeRecipientInfo", kind="switch"),
    Parameter("BookmarkIndex"),
    Parameter("BookmarkObject"),
    Parameter("IncludeBookmark"),
    Parameter("SortOrder", kind="list"),
    Parameter("ReturnPageInfo"),
)
def getMessage(
    context, Identity=None, Queue=None, Filter=None, Server=None, ResultSize=None,
    IncludeRecipientInfo=False, BookmarkIndex=None, BookmarkObject=None, IncludeBookmark=True,
    SortOrder=None, ReturnPageInfo=False,
):
    """
    The messages, or a page of them: the server sorts (C{-SortOrder
    +FromAddress,-Size}), pages (from the 1-based C{-BookmarkIndex} or
    the message C{-BookmarkObject}, itself included unless
    C{-IncludeBookmark $false}; at most C{-ResultSize}) and sends the page
    only.  C{-ReturnPageInfo $true} outputs a L{MessagePageInfo} first.
    """
    identity = _identity(Identity)
    queue = _identity(Queue)
    _exclusive(Identity=identity, Queue=queue, Filter=Filter)
    _exclusive(BookmarkIndex=BookmarkIndex, BookmarkObject=BookmarkObject)
    limit = _resultSize(ResultSize)
    page = _call(
        context, "getMessage", Server, identity or queue,
        identity=identity, queue=queue, filter=_filterText(context, Filter),
        resultSize=limit,
        bookmarkIndex=_whole("BookmarkIndex", BookmarkIndex, 1),
        bookmarkObject=_identity(BookmarkObject),
        includeBookmark=_boolean("IncludeBookmark", IncludeBookmark),
        sortOrder=[str(item) for item in SortOrder] if SortOrder else None,
        returnPageInfo=True,
    )
    messages = [_messageInfo(row) for row in page["Messages"]]
    if _boolean("ReturnPageInfo", ReturnPageInfo):
        return [MessagePageInfo(page["TotalCount"], page["BookmarkIndex"]), *messages]
    if page["BookmarkIndex"] - 1 + len(messages) < page["TotalCount"]:
        context.writeWarning(
            "There are more results, use ResultSize to view more results "
            f"({len(messages)} shown)."
        )
    return messages


def _messageCommand(context, command, action, Identity, Filter, Server, **arguments):
    identity = _identity(Identity)
    _identityOrFilter(identity, Filter)
    target = identity if identity is not None else f"messages matching {Filter}"
    if not context.shouldProcess(target, action):
        return
    results = _call(
        context, command, Server, identity,
        identity=identity, filter=_filterText(context, Filter), **arguments,
    )
    for result in results:
        if result["Status"].startswith("Pending"):
            context.writeWarning(
                f"{result['Identity']} is being delivered; it is {result['Status']} "
                "until that ends."
            )


@cmdlet(
    "Suspend-Message",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def suspendMessage(context, Identity=None, Filter=None, Server=None):
    _messageCommand(context, "suspendMessage", "Suspend-Message", Identity, Filter, Server)


@cmdlet(
    "Resume-Message",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def resumeMessage(context, Identity=None, Filter=None, Server=None):
    _messageCommand(context, "resumeMessage", "Resume-Message", Identity, Filter, Server)


@cmdlet(
    "Remove-Message",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Filter"),
    Parameter("WithNDR"),
    Parameter("Server"),
    supportsWhatIf=True,
)
def removeMessage(context, Identity=None, Filter=None, WithNDR=True, Server=None):
    if not isinstance(WithNDR, bool):
        raise CmdletError(
            f"Cannot bind parameter 'WithNDR': {WithNDR!r} is not $true or $false"
        )
    _messageCommand(
        context, "removeMessage", "Remove-Message", Identity, Filter, Server, withNDR=WithNDR
    )


@cmdlet(
    "Export-Message",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Path"),
    Parameter("Server"),
)
def exportMessage(context, Identity, Path=None, Server=None):
    identity = _identity(Identity)
    result = _call(context, "exportMessage", Server, identity, identity=identity)
    exported = ExportedMessage(
        Identity=result["Identity"],
        Size=result["Size"],
        FileData=base64.b64decode(result["Data"]),
    )
    if Path is None:
        return [exported]
    _writeMessage(Path, exported.FileData)
    return []


@cmdlet(
    "AssembleMessage",
    Parameter("InputObject", pipeline=True),
    Parameter("Path", mandatory=True, position=0),
    collectInput=True,
)
def assembleMessage(context, InputObject=(), Path=None):
    """
    Exchange 2010's script that writes what Export-Message outputs to a
    file: C{Export-Message -Identity X | AssembleMessage -Path x.eml}.
    """
    messages = [item for item in (InputObject or ()) if item is not None]
    if len(messages) != 1:
        raise CmdletError(
            f"AssembleMessage writes one message to -Path; {len(messages)} were piped in"
        )
    [message] = messages
    data = getattr(message, "FileData", message)
    if not isinstance(data, bytes):
        raise CmdletError("AssembleMessage takes the output of Export-Message")
    _writeMessage(Path, data)
    return []


def _writeMessage(path, data):
    path = os.path.expanduser(str(path))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "wb") as handle:
            handle.write(data)
    except OSError as error:
        raise CmdletError(f"Cannot write {path}: {error.strerror}") from None


# Message tracking


def _date(name, value):
    if value is None:
        return None
    try:
        return parseDateTime(value)
    except ValueError as error:
        raise CmdletError(f"Cannot bind parameter '{name}': {error}") from None


@cmdlet(
    "Get-MessageTrackingLog",
    Parameter("Sender"),
    Parameter("Recipients", kind="list"),
    Parameter("MessageId"),
    Parameter("InternalMessageId"),
    Parameter("MessageSubject"),
    Parameter("EventId"),
    Parameter("Start"),
    Parameter("End"),
    Parameter("Server", kind="list"),
    Parameter("ResultSize"),
)
def getMessageTrackingLog(
    context, Sender=None, Recipients=None, MessageId=None, InternalMessageId=None,
    MessageSubject=None, EventId=None, Start=None, End=None, Server=None, ResultSize=None,
):
    """
    Read the TransportServer's MessageTrackingLogPath directly (the server
    need not run), or, for a server on another machine, ask it over its
    AdminBindings.  -Server takes several servers, to follow a message
    from one to the next: their events come oldest first.
    -Sender, -MessageId, -InternalMessageId and -EventId compare
    case-insensitively (a Message-ID with or without its angle brackets);
    -Recipients matches an event about any of them; -MessageSubject
    matches a part of the subject, case-insensitively, as Exchange's does
    (every event of the message carries its subject, logged with its
    RECEIVE); -Start is inclusive, -End exclusive.
    """
    start, end = _date("Start", Start), _date("End", End)
    limit = _resultSize(ResultSize)
    filters = dict(
        start=start, end=end, sender=Sender, recipients=list(Recipients) if Recipients else None,
        messageId=MessageId, internalMessageId=InternalMessageId, eventId=EventId, limit=limit,
        messageSubject=MessageSubject,
    )
    if isinstance(Server, str):
        Server = (Server,)
    found = []
    for name in Server or (None,):
        transportServer = _transportServer(context, name)
        if _isRemote(transportServer):
            events = _call(context, "getMessageTrackingLog", transportServer.name, **filters)
        else:
            events = searchTrackingLog(transportServer.messageTrackingLogPath, **filters)
        found.extend(_trackingEvent(event, transportServer.name) for event in events)
    found.sort(key=lambda event: event.Timestamp)
    return _limited(context, found, limit)


@dataclass
class MessageTrackingStatistics:
    """
    Get-MessageTrackingStatistics's output: how many events of one kind a
    connector had in a period (exmta's own cmdlet, for the console's
    dashboard).
    """

    DefaultDisplayPropertySet = ("Server", "ConnectorId", "EventId", "Count")

    Server: str
    ConnectorId: str | None
    EventId: str
    Count: int


@cmdlet(
    "Get-MessageTrackingStatistics",
    Parameter("Start"),
    Parameter("End"),
    Parameter("Server"),
)
def getMessageTrackingStatistics(context, Start=None, End=None, Server=None):
    """
    Count a TransportServer's tracking events between -Start (a day ago by
    default) and -End (now), to the minute, per event id and connector.
    The counts are kept in memory between calls, so that counting again
    reads only the lines written since.
    """
    transportServer = _transportServer(context, Server)
    end = _date("End", End)
    if end is None:
        end = datetime.datetime.now().timestamp()
    start = _date("Start", Start)
    if start is None:
        start = end - 86400
    counts = trackingCounts(transportServer.messageTrackingLogPath).count(start, end)
    return [
        MessageTrackingStatistics(transportServer.name, connector, eventId, number)
        for (eventId, connector), number in sorted(
            counts.items(), key=lambda item: (str(item[0][1] or ""), str(item[0][0]))
        )
    ]


def _trackingEvent(event, server):
    related = event.get("relatedRecipientAddress") or ()
    if isinstance(related, str):
        related = (related,)
    return MessageTrackingEvent(
        Timestamp=_localTime(event["timestamp"]),
        EventId=event.get("eventId"),
        Source=event.get("source"),
        Sender=event.get("sender"),
        Recipients=tuple(event.get("recipients", ())),
        RecipientStatus=event.get("recipientStatus"),
        MessageId=event.get("messageId"),
        InternalMessageId=event.get("internalMessageId"),
        MessageSubject=event.get("messageSubject"),
        TotalBytes=event.get("totalBytes"),
        ConnectorId=event.get("connectorId"),
        NextHop=event.get("nextHop"),
        ClientIp=event.get("clientIp"),
        ServerIp=event.get("serverIp"),
        Reference=event.get("reference"),
        RelatedRecipientAddress=tuple(related),
        ServerHostname=server,
    )
