"""
The console's progressive enhancements: its one script,
C{static/console.js} (confirmation dialogs, live numbers), served at
C{/ecp/static/console.js} and allowed by the Content-Security-Policy's
C{script-src 'self'}; and L{answerJson}, how pages answer the script's
requests for live numbers.  Every page works without the script.
"""

import json
import os

from twisted.web.server import NOT_DONE_YET

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SCRIPTS = ("console.js",)


def static(context, rest):
    if len(rest) != 1 or rest[0] not in SCRIPTS:
        return context.refuse(404, "There is no such page.")
    with open(os.path.join(STATIC, rest[0]), "rb") as handle:
        script = handle.read()
    request = context.request
    request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
    request.write(script)
    request.finish()
    return NOT_DONE_YET


def answerJson(context, value):
    """
    Answer with C{value} as JSON (numbers and text for the script).
    """
    if context.gone:
        return NOT_DONE_YET
    request = context.request
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(value, default=str).encode("utf-8"))
    request.finish()
    return NOT_DONE_YET


ROUTES = {(b"GET", "static"): static}
