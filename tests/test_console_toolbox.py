"""
The console's Toolbox and Dashboard (exmta.console.queueviewer,
messagetracking, dashboard, enhance) rendered with DummyRequests against
a server running in this process: its send connector points at a closed
port, so the messages submitted over SMTP wait in Retry.  Each page runs
the Shell's cmdlets (through the admin endpoint); every value a sender
chose is escaped; no page answers without a logon; failed logons are
throttled.  The browser's view is tests/e2e/test_console_toolbox_browser.py.
"""

import json
import smtplib

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.web.server import NOT_DONE_YET

from exmta.console.resource import SESSION_COOKIE, ConsoleResource, OrganizationManagementRealm
from exmta.service import makeService
from tests.e2e.harness import freePort, writeOrganization
from tests.test_console import _Request
from tests.test_queue import temporaryFolder
from tests.test_queue_cmdlets import ORGANIZATION as QUEUE_ORGANIZATION
from twisted.trial.unittest import TestCase

HOSTILE = "<script>alert(1)</script>"


def message(subject):
    return f"Subject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@fabrikam.com>\r\n\r\nHi\r\n"


class ToolboxTestCase(TestCase):
    def setUp(self):
        self.folder = temporaryFolder(self)
        self.port = freePort()
        organization = QUEUE_ORGANIZATION.replace(
            "TransientFailureRetryInterval = 01:00:00",
            "TransientFailureRetryInterval = 01:00:00\nMessageTrackingLogPath = var/tracking",
        )
        self.config = writeOrganization(
            self.folder, organization.format(port=self.port, closed=freePort())
        )
        from tests.test_send_support import ZoneResolver

        self.server = makeService(self.config, "HubA", reactor=reactor, resolver=ZoneResolver({}))
        self.server.startService()
        self.addCleanup(lambda: self.server.running and self.server.stopService())
        self.queue = self.server.getServiceNamed("queue")
        checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{"admin@fabrikam.com": b"right", "viewer@fabrikam.com": b"views"}
        )
        portal = Portal(
            OrganizationManagementRealm(["admin@fabrikam.com"], ["viewer@fabrikam.com"]), [checker]
        )
        self.reloads = []
        self.console = ConsoleResource(
            self.config, portal, reactor, runInThread=threads.deferToThread,
            reload=lambda: self.reloads.append(True),
        )

    async def submit(self, sender, recipients, subjects):
        def send():
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                for subject in subjects:
                    client.sendmail(sender, recipients, message(subject).encode())

        await threads.deferToThread(send)
        while True:
            await self.queue.whenIdle()
            messages = self.queue.spool.messages()
            # Tried once, or parked behind a next hop in retry.
            parked = self.queue.hops.parkedMessages()
            if len(messages) >= len(subjects) and all(
                r.attempts or r.status != "Ready" or m.queueId in parked
                for m in messages for r in m.recipients
            ):
                return
            await deferLater(reactor, 0.02, lambda: None)

    async def render(self, request):
        finished = request.notifyFinish()
        result = self.console.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        await finished
        return request

    async def logOn(self, user="admin@fabrikam.com", password="right"):
        form = await self.render(_Request([b"logon"]))
        token = form.cookie(b"exmta-ecp-logon")
        answer = await self.render(
            _Request([b"logon"], b"POST", {b"exmta-ecp-logon": token},
                     {"csrf": token.decode(), "username": user, "password": password})
        )
        self.assertEqual(answer.responseCode, 303)
        self.key = answer.cookie(SESSION_COOKIE)
        self.token = self.console.sessions[self.key]["csrf"].decode()

    async def get(self, *path, **args):
        request = _Request([p.encode() for p in path], cookies={SESSION_COOKIE: self.key},
                           args=args)
        return await self.render(request)

    async def post(self, *path, **fields):
        request = _Request([p.encode() for p in path], b"POST", {SESSION_COOKIE: self.key},
                           {"csrf": self.token})
        for name, value in fields.items():
            values = value if isinstance(value, list) else [value]
            request.args[name.encode()] = [v.encode() for v in values]
        return await self.render(request)

    async def messages(self):
        return await self.console.runShell("Get-Message -ResultSize Unlimited")


class QueueViewerTests(ToolboxTestCase):
    async def test_queuesAndHostileSubject(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], [HOSTILE])
        await self.logOn()
        page = (await self.get("queueviewer")).body()
        self.assertIn("HubA\\ToInternet", page)
        self.assertIn('data-live="Status:HubA\\ToInternet">Retry</td>', page)
        self.assertIn('data-live="MessageCount:HubA\\ToInternet">1</td>', page)
        self.assertIn("Unable to connect", page)
        listed = (await self.get("queueviewer", "messages", queue="HubA\\ToInternet")).body()
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", listed)
        self.assertNotIn("<script>alert", listed)
        self.assertIn("Messages 1-1 of 1", listed)
        live = json.loads((await self.get("queueviewer.json")).body())
        self.assertEqual(live["MessageCount:HubA\\ToInternet"], "1")

    async def test_pagingAndFilter(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], [f"n{i}" for i in range(55)])
        await self.submit("ann@fabrikam.com", ["lee@contoso.com"], ["from ann"])
        await self.logOn()
        first = (await self.get("queueviewer", "messages")).body()
        self.assertIn("Messages 1-50 of 56", first)
        self.assertEqual(first.count('name="identity"'), 50)
        self.assertIn("start=51", first)
        second = (await self.get("queueviewer", "messages", start="51")).body()
        self.assertIn("Messages 51-56 of 56", second)
        self.assertEqual(second.count('name="identity"'), 6)
        self.assertIn("from ann", second)
        found = (await self.get("queueviewer", "messages", **{"from": "ann@*"})).body()
        self.assertIn("Messages 1-1 of 1", found)
        found = (await self.get("queueviewer", "messages", subject="n5", minsize="0",
                                queue="HubA\\ToInternet")).body()
        self.assertIn("Messages 1-6 of 6", found)  # n5 and n50 to n54
        found = (await self.get("queueviewer", "messages", subject="n5", minsize="1")).body()
        self.assertIn("Messages none of 0", found)
        refused = await self.get("queueviewer", "messages", minsize="lots")
        self.assertEqual(refused.responseCode, 400)
        self.assertIn("whole number of KB", refused.body())
        # A quote in a field stays inside its string.
        quoted = (await self.get("queueviewer", "messages", subject="it's' -or Size -gt '0")).body()
        self.assertIn("Messages none of 0", quoted)

    async def test_messageActions(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], ["one", "two"])
        await self.logOn()
        one, two = [m.Identity for m in await self.messages()]
        done = (await self.post("queueviewer", "messages", action="suspend", identity=[one, two],
                                back="/ecp/queueviewer/messages")).body()
        self.assertIn("completed successfully", done)
        self.assertIn(f"Suspend-Message -Identity '{one}'; Suspend-Message -Identity '{two}'", done)
        self.assertEqual({m.Status for m in await self.messages()}, {"Suspended"})
        listed = (await self.get("queueviewer", "messages")).body()
        self.assertIn('class="export"', listed)
        exported = await self.get("queueviewer", "export", identity=one)
        self.assertEqual(exported.responseHeaders.getRawHeaders(b"content-type"), [b"message/rfc822"])
        self.assertTrue(b"".join(exported.written).endswith(message("one").encode()))
        await self.post("queueviewer", "messages", action="resume", identity=two)
        confirm = await self.post("queueviewer", "messages", action="remove", identity=one)
        self.assertIn("Their senders are not told", confirm.body())
        self.assertEqual(len(await self.messages()), 2)
        await self.post("queueviewer", "messages", action="remove", identity=one,
                        confirmed="yes")
        [left] = await self.messages()
        self.assertEqual((left.Identity, left.Status), (two, "Retry"))

    async def test_queueActions(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], ["one"])
        await self.logOn()
        queue = "HubA\\ToInternet"
        await self.post("queueviewer", "queues", action="suspend", identity=queue)
        self.assertIn('>Suspended</td>', (await self.get("queueviewer")).body())
        refused = await self.post("queueviewer", "queues", action="retry", identity=queue)
        self.assertEqual(refused.responseCode, 400)
        self.assertIn("is suspended; resume it", refused.body())
        await self.post("queueviewer", "queues", action="resume", identity=queue)
        retried = (await self.post("queueviewer", "queues", action="retry", identity=queue)).body()
        self.assertIn("Retry-Queue -Identity", retried)
        nothing = await self.post("queueviewer", "queues", action="retry")
        self.assertEqual(nothing.responseCode, 400)
        # The queue's actions change no configuration: no reload.
        self.assertEqual(self.reloads, [])

    async def test_viewOnlySeesNoActions(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], ["one"])
        await self.logOn("viewer@fabrikam.com", "views")
        page = (await self.get("queueviewer", "messages")).body()
        self.assertNotIn('name="action"', page)
        self.assertEqual((await self.post("queueviewer", "queues", action="suspend",
                                          identity="HubA\\ToInternet")).responseCode, 403)
        [queued] = await self.messages()
        await self.console.runShell(f"Suspend-Message -Identity '{queued.Identity}'")
        listed = (await self.get("queueviewer", "messages")).body()
        self.assertNotIn('class="export"', listed)
        # A message's content is not for viewers, even by its address.
        exported = await self.get("queueviewer", "export", identity=queued.Identity)
        self.assertEqual(exported.responseCode, 403)
        self.assertEqual(exported.written and b"".join(exported.written).count(b"Subject: one"), 0)


class TrackingAndDashboardTests(ToolboxTestCase):
    async def test_searchAndPath(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], [HOSTILE, "other"])
        await self.submit("ann@fabrikam.com", ["kim@fabrikam.com"], ["local"])
        await self.logOn()
        empty = (await self.get("messagetracking")).body()
        self.assertIn('id="tracking-search"', empty)
        self.assertNotIn('id="events"', empty)
        found = (await self.get("messagetracking", subject="script", eventid="RECEIVE")).body()
        self.assertIn("Get-MessageTrackingLog -ResultSize 1000 -MessageSubject &#x27;script&#x27;",
                      found.replace("'", "&#x27;"))
        self.assertIn("1 events found.", found)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", found)
        self.assertNotIn("<script>alert", found)
        queueId = found.split("path?id=")[1][:24]
        path = (await self.get("messagetracking", "path", id=queueId)).body()
        events = [part.split("<")[0] for part in path.split('<td class="EventId">')[1:]]
        self.assertEqual(sorted(events[:2]), ["RECEIVE", "SUBMIT"])
        self.assertIn("DEFER", events)
        delivered = (await self.get("messagetracking", sender="ann@fabrikam.com",
                                    eventid="DELIVER")).body()
        self.assertIn("1 events found.", delivered)
        bad = await self.get("messagetracking", start="not a date")
        self.assertEqual(bad.responseCode, 400)
        self.assertIn("Start", bad.body())

    async def test_dashboard(self):
        await self.submit("kim@fabrikam.com", ["lee@contoso.com"], ["a", "b"])
        await self.submit("ann@fabrikam.com", ["kim@fabrikam.com"], ["local"])
        await self.logOn()
        page = (await self.get("")).body()
        self.assertIn('data-live="HubA:state">Running</td>', page)
        self.assertIn('data-live="HubA:queued">2</td>', page)
        self.assertIn('data-live="HubA:HubA\\Relay:hour:received">3</td>', page)
        # The second message waits behind the first one's attempt.
        self.assertIn('data-live="HubA:ToInternet:day:deferred">1</td>', page)
        self.assertIn('data-live="HubA:(all connectors):hour:sent">1</td>', page)
        self.assertIn('<noscript><meta http-equiv="refresh" content="60"', page)
        self.assertIn('id="Get-ReceiveConnector"', page)
        live = json.loads((await self.get("dashboard.json")).body())
        self.assertEqual(live["HubA:queued"], "2")
        self.assertTrue(live["HubA:oldest"].endswith(" s"))
        await self.server.stopService()
        stopped = (await self.get("")).body()
        self.assertIn('data-live="HubA:state">Not running</td>', stopped)


class EnhancementTests(ToolboxTestCase):
    async def test_scriptUnderTheContentSecurityPolicy(self):
        await self.logOn()
        page = await self.get("messagetracking")
        [policy] = page.responseHeaders.getRawHeaders(b"content-security-policy")
        self.assertIn(b"script-src 'self'", policy)
        self.assertIn('<script src="/ecp/static/console.js" defer="defer"></script>', page.body())
        self.assertEqual(page.body().count("<script"), 1)
        script = await self.get("static", "console.js")
        self.assertEqual(
            script.responseHeaders.getRawHeaders(b"content-type"), [b"text/javascript; charset=utf-8"]
        )
        self.assertIn(b"data-confirm", b"".join(script.written))
        self.assertEqual((await self.get("static", "other.js")).responseCode, 404)

    async def test_noPageWithoutLogon(self):
        for path in ("", "dashboard.json", "queueviewer", "queueviewer.json", "messagetracking",
                     "static"):
            request = await self.render(_Request([path.encode()]))
            self.assertEqual(request.responseCode, 303, path)
        request = await self.render(
            _Request([b"queueviewer", b"queues"], b"POST", args={"action": "suspend"})
        )
        self.assertEqual(request.responseCode, 403)


class LogonThrottleTests(ToolboxTestCase):
    async def test_failedLogonsThrottled(self):
        for _ in range(10):
            form = await self.render(_Request([b"logon"]))
            token = form.cookie(b"exmta-ecp-logon")
            refused = await self.render(
                _Request([b"logon"], b"POST", {b"exmta-ecp-logon": token},
                         {"csrf": token.decode(), "username": "admin@fabrikam.com",
                          "password": "guess"})
            )
            self.assertEqual(refused.responseCode, 403)
        form = await self.render(_Request([b"logon"]))
        token = form.cookie(b"exmta-ecp-logon")
        held = await self.render(
            _Request([b"logon"], b"POST", {b"exmta-ecp-logon": token},
                     {"csrf": token.decode(), "username": "admin@fabrikam.com",
                      "password": "right"})
        )
        self.assertEqual(held.responseCode, 429)
        self.assertIn("Too many failed logons", held.body())
