"""
The crash soak of issue 11, short: mail received and relayed to a smart
host while the server is killed with SIGKILL three times, each time once
another hundred messages were acknowledged, and started again on the same
queue.  Every acknowledged message reaches the smart host, intact.
campaigns/crashsoak.py runs the long one (tests/e2e/soak.py).
"""

from collections import Counter

import pytest

from tests.e2e.harness import RawClient
from tests.e2e.sending import waitUntil
from tests.e2e.soak import Report, Sink, bodyFor, messageFor, soak


@pytest.mark.parametrize("workers", [0, 2], ids=["one process", "two receive workers"])
def test_everyAcknowledgedMessageReachesTheSmartHostThroughKills(tmp_path, workers):
    report = soak(str(tmp_path), workers=workers, cycles=3, interval=0, acknowledgedPerCycle=100)
    summary = "\n".join(report.lines())
    assert len(report.cycles) == 3, summary
    assert report.lost == set(), summary
    assert report.damaged == set(), summary
    assert report.stillQueued == 0, summary
    # Nothing bounced, and no kill left a traceback in a log.
    assert report.deliveries[None] == 0, summary
    assert report.tracebacks == 0, summary


def test_theAccountingFindsALostMessage():
    """
    An acknowledged message the smart host never received is lost and fails
    the soak; one received twice is a duplicate, one received though its
    client never heard 250 is neither, and neither fails it.
    """
    report = Report(
        workers=0, seconds=1, sent=4, acknowledged={"0.0", "0.1", "0.2"},
        deliveries=Counter({"0.0": 1, "0.1": 2, "0.3": 1}), damaged=set(), relaysCut=0, stillQueued=0,
        drainSeconds=0, refusals=Counter(), cut=0, tracebacks=0,
    )
    assert report.lost == {"0.2"}
    assert report.duplicates == {"0.1": 2}
    assert report.unacknowledgedDelivered == {"0.3"}
    assert not report.passed
    report.deliveries["0.2"] += 1
    assert report.passed


def test_theSinkCountsWholeMessagesOnly():
    """
    The smart host counts a message once its end of data has arrived, and
    marks it damaged when its body is not the one sent; a transaction cut
    before its end of data is not a delivery.
    """
    sink = Sink()
    try:
        client = RawClient("127.0.0.1", sink.port)
        client.reply()
        client.command("EHLO hub.fabrikam.com")
        for ident, body in (("9.0", bodyFor("9.0")), ("9.1", b"not what was sent\r\n")):
            client.command("MAIL FROM:<a@fabrikam.com>")
            client.command("RCPT TO:<b@contoso.com>")
            assert client.command("DATA")[0] == 354
            head = messageFor(ident)[: -len(bodyFor(ident))]
            client.send(head + body + b".\r\n")
            assert client.reply()[0] == 250
        client.command("MAIL FROM:<a@fabrikam.com>")
        client.command("RCPT TO:<b@contoso.com>")
        assert client.command("DATA")[0] == 354
        client.send(messageFor("9.2"))
        client.close()
        deliveries, damaged, cut = waitUntil(lambda: sink.record()[2] and sink.record(),
                                             "the sink to see the cut")
    finally:
        sink.stop()
    assert deliveries == Counter({"9.0": 1, "9.1": 1})
    assert damaged == {"9.1"}
    assert cut == 1
