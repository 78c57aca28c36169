"""
Shadow redundancy between two real servers (L{exmta.queue.shadow}; the
set-up is tests/e2e/shadowfailover.py): HubA keeps a shadow of each
message it forwards to HubB until HubB's discard notification; when HubB
dies with its disk, HubA resubmits after the heartbeat timeout and no
message is lost.  The 1,000 message run of the issue is
campaigns/shadowfailover.py; the suite sends L{MESSAGES}.
"""

import os
import shutil
import sys
import time

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.shadowfailover import TIMEOUT, Organization, failover

MESSAGES = 200


@pytest.fixture
def organization(tmp_path):
    made = Organization(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_shadowsDiscardedAfterDelivery(organization):
    """
    With HubB healthy, HubA keeps shadows of what it forwards and discards
    them once HubB has relayed them: Get-Queue shows HubA's Shadow
    Redundancy queue for HubB, and it ends empty, as does HubA's spool.
    """
    organization.send(range(20))
    organization.awaitAll(20)
    deadline = time.monotonic() + TIMEOUT
    while True:
        organization.drain()
        shadows = organization.shadowQueue()
        if shadows and shadows[0].MessageCount == 0:
            break
        assert time.monotonic() < deadline, shadows
        time.sleep(0.1)
    assert [(row.Identity, row.NextHopDomain) for row in shadows] == [("HubA\\Shadow\\1", "HubB")]
    [row] = organization.session.invoke("Get-Queue -Server HubA -Identity 'HubA\\Shadow\\1'")
    assert (row.DeliveryType, row.MessageCount) == ("ShadowRedundancy", 0)
    assert os.listdir(organization.folder / "var" / "HubA" / "queue" / "messages") == []
    assert organization.received() == dict.fromkeys(range(20), 1)


def test_hubBLostResubmitted(organization):
    """
    HubA relays L{MESSAGES} messages through HubB; half way, while HubB
    holds the messages the sink deferred, HubB is killed (SIGKILL) and its
    disk discarded.  After the heartbeat timeout HubA resubmits its
    shadows, and once a new HubB runs every message reaches the sink at
    least once.  Without the shadows, the messages HubB held are lost
    (failed before: 50 of 200).
    """
    counts = failover(organization, MESSAGES)
    duplicates = sum(count - 1 for count in counts.values())
    sys.stdout.write(
        f"\nshadow failover: {MESSAGES} sent, {len(counts)} reached the sink, "
        f"{duplicates} duplicates\n"
    )
    assert sorted(counts) == list(range(MESSAGES))


def test_hubBLostWhileHubADown(organization):
    """
    HubA is killed while HubB holds messages the sink deferred, and HubB
    dies with its disk while HubA is down.  The restarted HubA still knows
    which instance of HubB's queue its shadows went to: the new HubB's
    first heartbeat answer makes it resubmit them, and every message
    reaches the sink.  (Failed before, when the instance was kept only in
    memory: HubA took the new instance for the one its shadows went to,
    and the held messages were lost.)
    """
    organization.sink.refuse["held@contoso.com"] = "451 4.2.0 Try later"
    organization.send(
        range(10), lambda number: "held@contoso.com" if number % 2 else "kim@contoso.com"
    )
    organization.hubB.waitFor("451 4.2.0 Try later", count=5, timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    # HubA records a shadow once HubB's 250 is in, which may come after
    # HubB's attempt: the held messages are all shadows before HubA dies.
    while not any(row.MessageCount >= 5 for row in organization.shadowQueue()):
        assert time.monotonic() < deadline, organization.shadowQueue()
        organization.drain()
        time.sleep(0.1)
    organization.hubA.kill()
    organization.hubB.kill()
    shutil.rmtree(organization.folder / "var" / "HubB")
    del organization.sink.refuse["held@contoso.com"]
    organization.hubB = organization.startHubB()
    organization.hubA = ServerProcess(organization.config, sockets=1, server="HubA")
    organization.hubA.waitFor("lost its queue (a new instance)", timeout=TIMEOUT)
    organization.awaitAll(10)



def test_shadowsThroughReceiveWorkers(organization):
    """
    A HubB whose sessions run in receive workers (C{--workers}) offers
    XSHADOW too, and its workers answer XQDISCARD with the discard
    notifications of its main process: HubA keeps shadows of what it
    forwards and discards them once HubB has relayed them.
    """
    organization.hubB.stop()
    organization.hubB = ServerProcess(organization.config, sockets=1, server="HubB", workers=2)
    organization.send(range(5))
    organization.awaitAll(5)
    deadline = time.monotonic() + TIMEOUT
    while True:
        organization.drain()
        shadows = organization.shadowQueue()
        if shadows and shadows[0].MessageCount == 0:
            break
        assert time.monotonic() < deadline, shadows
        time.sleep(0.1)
    assert [(row.Identity, row.NextHopDomain) for row in shadows] == [("HubA\\Shadow\\1", "HubB")]
    assert os.listdir(organization.folder / "var" / "HubA" / "queue" / "messages") == []
    assert organization.received() == dict.fromkeys(range(5), 1)
