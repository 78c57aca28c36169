"""
The admin protocol: what a client and a transport server's admin endpoint
say to each other.  Both sides use this module; it loads nothing of either.

Where
=====
A UNIX stream socket, C{admin.sock} in the server's queue folder
(QueueDatabasePath; L{adminSocketPath}).  Who may connect is the server's
business (L{exmta.admin.server}).  A path longer than a UNIX socket
address allows is reached through C{/proc/self/fd} on Linux
(L{reachable}).

Protocol
========
UTF-8 lines, LF-terminated, each one JSON object; the client sends
requests, the server answers each with one line, in order::

    > {"command": "getQueue", "arguments": {"identity": "HubA\\\\ToInternet"}}
    < {"ok": true, "result": [{"Identity": "HubA\\\\ToInternet", ...}]}
    > {"command": "exportMessage", "arguments": {"identity": "00061A2B3C4D5EA1B2C3D4E5"}}
    < {"ok": false, "error": {"kind": "InvalidState", "message": "..."}}

C{arguments} may be left out.  Error kinds: C{BadRequest} (not JSON, an
unknown command or argument), C{NotFound} (no such queue or message),
C{InvalidArgument} (a bad identity or filter), C{InvalidState} (the queue
or message is not in a state that allows it), C{ConfigError} (a reload
refused: the message is the ConfigError's text), C{Internal}.  A
connection may carry any number of requests; lines are at most 1 MiB.

Commands (identities and rows: L{exmta.queue.views}; what they do:
L{exmta.admin.commands}):

  - C{getQueue} C{{identity?, filter?}}: the Get-Queue rows.
  - C{getMessage} C{{identity? | queue? | filter?}} (at most one), and for
    a page C{{resultSize?, bookmarkIndex? | bookmarkObject?,
    includeBookmark? = true, sortOrder?, returnPageInfo? = false}}: the
    Get-Message rows, one per message and queue, by queue then arrival or
    by C{sortOrder} (C{["+FromAddress", "-Size"]}); C{Subject} and
    C{InternetMessageId} come from the first 64 KiB of each message.  The
    page begins at the 1-based C{bookmarkIndex}, or at the message
    C{bookmarkObject} names (after it if not C{includeBookmark}), and
    holds at most C{resultSize} rows; only its rows are sent, and without a
    filter or an order only they are made.  With C{returnPageInfo} the
    result is C{{TotalCount, BookmarkIndex, Messages}}: how many rows the
    whole result has, the index of the page's first, and the page.
  - C{retryQueue} C{{identity, resubmit?}}: try the queue's recipients now
    (it must be in C{Retry} status unless C{resubmit}, which routes them
    again first); result C{{Identity, MessageCount}}.
  - C{suspendQueue} / C{resumeQueue} C{{identity}}: stop or restart sending
    to a next hop (sends in flight finish); result: the queue's row.
    Queue suspension is kept in memory: a restart resumes every queue.
    C{suspendQueue}'s C{evenIfEmpty} (false by default) suspends the
    named queue even where it has no message: the main process of a
    server with receive workers asks each part so
    (L{exmta.admin.parts}), so that a part where the queue is empty holds
    the messages it receives later.
  - C{suspendMessage} / C{resumeMessage} C{{identity? | filter?}}: durable
    (the spool's C{suspended}); result: C{[{Identity, Status}]}, the
    status C{PendingSuspend} (C{PendingResume}) when a delivery of the
    message is in progress (the action follows when it ends).
  - C{removeMessage} C{{identity? | filter?, withNDR? = true}}: fail the
    message's recipients (those of the queue an identity or filter row
    names) with C{550 4.3.2 QUEUE.Admin; message deleted by administrative
    action}, with a notification to the sender unless C{withNDR} is false;
    result: C{[{Identity, Status}]} (C{Removed} or C{PendingRemove}).
  - C{exportMessage} C{{identity}}: C{{Identity, Size, Data}}, C{Data} the
    message's .eml bytes in base64.  As in Exchange, the message must be
    suspended first.
  - C{getMessageTrackingLog} C{{start?, end?, sender?, recipients?,
    messageId?, internalMessageId?, eventId?, messageSubject?, limit?}}: the server's
    message tracking events those filters select (C{start}, C{end}:
    seconds since the epoch), as L{exmta.tracking.searchTrackingLog} reads
    them, for Get-MessageTrackingLog -Server.
  - C{reload}: read org.ini again (see
    L{exmta.service.TransportServerService.reload}); result
    C{{Path, RestartRequired}}.
  - C{getDiagnosticInfo} C{{component}}: C{ResourceThrottling} only, the
    back pressure level and each monitored resource's value, level and
    thresholds (L{exmta.monitor.service.ResourceMonitor.diagnosticInfo}).

Filters (C{filter}) are Exchange's OPATH filters (L{exmta.opath.query}).
"""

import contextlib
import json
import os

SOCKET_NAME = "admin.sock"
MAX_LINE = 1024 * 1024
# The longest path a sockaddr_un takes, with room for the NUL.
_MAX_SOCKET_PATH = 107


def adminSocketPath(transportServer):
    """
    @param transportServer: an L{exmta.config.model.TransportServer}.
    @return: the path of its admin socket.
    """
    return os.path.join(transportServer.queueDatabasePath, SOCKET_NAME)


class AdminError(Exception):
    """
    A request refused; C{kind} classifies it (see the module docstring).
    """

    def __init__(self, message, kind="InvalidArgument"):
        super().__init__(message)
        self.message = message
        self.kind = kind


# Lines


def encodeRequest(command, arguments):
    """
    @param arguments: a dict; arguments that are L{None} are left out.
    @return: the request line, with its LF.
    """
    request = {"command": command, "arguments": {k: v for k, v in arguments.items() if v is not None}}
    return json.dumps(request).encode("utf-8") + b"\n"


def decodeRequest(line):
    """
    @param line: a request line, without its LF.
    @return: (command, arguments dict).
    @raise AdminError: (C{BadRequest}) when it is not a request.
    """
    try:
        request = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise AdminError(f"not a JSON request: {error}", "BadRequest") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise AdminError('a request is a JSON object with a "command"', "BadRequest")
    arguments = request.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise AdminError('"arguments" is a JSON object', "BadRequest")
    return request["command"], arguments


def resultLine(result):
    """
    @return: the answer line (without its LF) carrying C{result}.
    """
    return _answerLine({"ok": True, "result": result})


def errorLine(kind, message):
    """
    @return: the answer line (without its LF) refusing a request.
    """
    return _answerLine({"ok": False, "error": {"kind": kind, "message": message}})


def _answerLine(answer):
    return json.dumps(answer, default=str).encode("ascii")


def decodeAnswer(line):
    """
    @param line: an answer line, without its LF, as text.
    @return: the result.
    @raise ValueError: the line is not JSON.
    @raise AdminError: the server refused the request.
    """
    answer = json.loads(line)
    if answer.get("ok"):
        return answer.get("result")
    error = answer.get("error") or {}
    raise AdminError(error.get("message", "refused"), error.get("kind", "Internal"))


# Addresses


@contextlib.contextmanager
def reachable(path):
    """
    Yield an address for C{path} that fits a UNIX socket address: the path
    itself, or (on Linux) C{/proc/self/fd/N/name} through a descriptor of
    its folder, open until the context ends.
    """
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        yield path
        return
    folder, name = os.path.split(path)
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise OSError(error.errno, f"{folder}: {error.strerror}") from None
    try:
        address = f"/proc/self/fd/{descriptor}/{name}"
        if not os.path.isdir(f"/proc/self/fd/{descriptor}") or len(address) > _MAX_SOCKET_PATH:
            raise OSError(f"{path} is too long for a UNIX socket address")
        yield address
    finally:
        os.close(descriptor)
