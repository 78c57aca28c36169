"""
Get-Message's pages (the Queue Viewer's paging): the admin command
C{getMessage} with C{resultSize}, C{bookmarkIndex}/C{bookmarkObject},
C{includeBookmark}, C{sortOrder} and C{returnPageInfo} over a few hundred
queued messages, checked against the whole result; the header sections
read for a page are the page's own.  Then the Shell's Get-Message with
the same parameters.  The speed with 100,000 messages is measured by
bench/queueviewer.py, not here.
"""

from twisted.internet.defer import gatherResults

from exmta.shell.queue_cmdlets import MessagePageInfo
from tests.test_admin_commands import CommandTestCase
from tests.test_queue import SESSION, envelope
from tests.test_queue_cmdlets import ShellTestCase

COUNT = 300


def message(number):
    return (
        f"Message-ID: <m{number}@fabrikam.com>\r\nSubject: report {number}\r\n\r\n".encode()
        + b"x" * (number * 7 % 500)
        + b"\r\n"
    )


class PagingTests(CommandTestCase):
    async def fill(self):
        self.start()
        await gatherResults(
            [
                self.spool.enqueue(
                    envelope("carol@example.org", sender=f"sender{n % 7}@fabrikam.com"),
                    SESSION,
                    message(n),
                )
                for n in range(COUNT)
            ]
        )
        await self.queue.whenIdle()
        self.everything = await self.call("getMessage")
        self.assertEqual(len(self.everything), COUNT)

    def ids(self, rows):
        return [row["InternalMessageId"] for row in rows]

    async def page(self, **arguments):
        return await self.call("getMessage", returnPageInfo=True, **arguments)

    async def test_pagesMakeTheWhole(self):
        await self.fill()
        seen, index = [], 1
        while True:
            page = await self.page(resultSize=50, bookmarkIndex=index)
            self.assertEqual(page["TotalCount"], COUNT)
            self.assertEqual(page["BookmarkIndex"], index)
            if not page["Messages"]:
                break
            seen.extend(page["Messages"])
            index += 50
        self.assertEqual(seen, self.everything)
        self.assertEqual(index, COUNT + 1)

    async def test_bookmarkObject(self):
        await self.fill()
        bookmark = self.everything[49]["Identity"]
        page = await self.page(resultSize=50, bookmarkObject=bookmark, includeBookmark=False)
        self.assertEqual(page["BookmarkIndex"], 51)
        self.assertEqual(self.ids(page["Messages"]), self.ids(self.everything[50:100]))
        page = await self.page(resultSize=3, bookmarkObject=bookmark)
        self.assertEqual(self.ids(page["Messages"]), self.ids(self.everything[49:52]))
        await self.refused("getMessage", "NotFound", bookmarkObject="0" * 24)

    async def test_onlyThePagesHeadersAreRead(self):
        """
        Without a filter, the rows (and the messages' header sections) of a
        page are the only ones made.
        """
        await self.fill()
        asked = []
        read = self.spool.headerSections
        self.spool.headerSections = lambda ids, **kw: (asked.extend(ids), read(ids, **kw))[1]
        self.admin._headers.clear()
        page = await self.page(resultSize=50, bookmarkIndex=101)
        self.assertEqual(sorted(asked), sorted(self.ids(page["Messages"])))
        self.assertEqual(page["Messages"][0]["Subject"], self.everything[100]["Subject"])

    async def test_sortOrder(self):
        await self.fill()
        page = await self.page(resultSize=10, sortOrder=["-Size", "+FromAddress"])
        expected = sorted(self.everything, key=lambda r: r["FromAddress"])
        expected.sort(key=lambda r: r["Size"], reverse=True)
        self.assertEqual(self.ids(page["Messages"]), self.ids(expected[:10]))
        page = await self.page(resultSize=5, bookmarkIndex=COUNT - 4, sortOrder=["-DateReceived"])
        self.assertEqual(self.ids(page["Messages"]), self.ids(self.everything[:5])[::-1])
        page = await self.page(resultSize=4, sortOrder=["Subject"])
        subjects = sorted(r["Subject"] for r in self.everything)
        self.assertEqual([r["Subject"] for r in page["Messages"]], subjects[:4])
        await self.refused("getMessage", "InvalidArgument", sortOrder=["+Colour"])

    async def test_filteredPage(self):
        await self.fill()
        matching = [
            r for r in self.everything
            if r["Subject"].startswith("report 1") and r["FromAddress"] == "sender3@fabrikam.com"
        ]
        page = await self.page(
            filter="Subject -like 'report 1*' -and FromAddress -eq 'sender3@fabrikam.com'",
            resultSize=5,
            bookmarkIndex=3,
        )
        self.assertEqual(page["TotalCount"], len(matching))
        self.assertEqual(page["Messages"], matching[2:7])
        page = await self.page(filter="Size -gt 400", resultSize=2)
        self.assertEqual(page["Messages"], [r for r in self.everything if r["Size"] > 400][:2])
        self.assertEqual(page["Messages"][0]["Subject"][:6], "report")

    async def test_queueAndIdentity(self):
        await self.fill()
        page = await self.page(queue="HubA\\ToInternet", resultSize=2, bookmarkIndex=COUNT)
        self.assertEqual(page["Messages"], self.everything[-1:])
        [row] = await self.call("getMessage", identity=self.everything[7]["Identity"], resultSize=5)
        self.assertEqual(row, self.everything[7])
        await self.refused("getMessage", "NotFound", queue="HubA\\Nowhere")

    async def test_refused(self):
        await self.fill()
        await self.refused("getMessage", "InvalidArgument", bookmarkIndex=0)
        await self.refused("getMessage", "InvalidArgument", resultSize=-1)
        await self.refused(
            "getMessage", "InvalidArgument", bookmarkIndex=2,
            bookmarkObject=self.everything[0]["Identity"],
        )


class ShellPagingTests(ShellTestCase):
    async def test_getMessagePage(self):
        for sender in ("kim", "ann", "lee"):
            await self.submit(f"{sender}@fabrikam.com", "max@contoso.com")
        info, message = await self.shell(
            "Get-Message -ResultSize 1 -BookmarkIndex 2 -ReturnPageInfo $true "
            "-SortOrder +FromAddress"
        )
        self.assertEqual(info, MessagePageInfo(TotalCount=3, BookmarkIndex=2))
        self.assertEqual(message.FromAddress, "kim@fabrikam.com")
        [ann, kim] = await self.shell("Get-Message -SortOrder '-FromAddress' -ResultSize 2 "
                                      "-BookmarkIndex 2")
        self.assertEqual((ann.FromAddress, kim.FromAddress), ("kim@fabrikam.com", "ann@fabrikam.com"))
        [lee] = await self.shell(
            f"Get-Message -BookmarkObject {message.Identity} -IncludeBookmark $false "
            "-SortOrder FromAddress"
        )
        self.assertEqual(lee.FromAddress, "lee@fabrikam.com")
        error = await self.failing("Get-Message -BookmarkIndex 0")
        self.assertIn("BookmarkIndex", error)
