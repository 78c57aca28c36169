"""
The shadow redundancy proof of issue 16 at full size: HubA relays 1,000
messages through HubB to a sink; HubB is killed with SIGKILL half way and
its disk discarded; after the heartbeat timeout HubA resubmits its
shadows, and every message must reach the sink at least once.  Duplicates
are counted.  The machinery is tests/e2e/shadowfailover.py, which the
suite runs with 200 messages (tests/e2e/test_shadow_redundancy.py).

    .venv/bin/python campaigns/shadowfailover.py                 # 1,000 messages, under a minute
    .venv/bin/python campaigns/shadowfailover.py --messages 5000

Exit status 1 if a message was lost; the run's folder is then kept.
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from tests.e2e.shadowfailover import Organization, failover  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages sent (1000)")
    arguments = parser.parse_args(argv)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="shadowfailover-"))
    started = time.monotonic()
    organization = Organization(folder)
    try:
        counts = failover(organization, arguments.messages)
    finally:
        organization.stop()
    lost = arguments.messages - len(counts)
    duplicates = sum(count - 1 for count in counts.values())
    print(
        f"{arguments.messages} sent, {len(counts)} reached the sink, {lost} lost, "
        f"{duplicates} duplicates, {time.monotonic() - started:.1f} s"
    )
    if lost:
        print(f"run kept in {folder}")
        return 1
    shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
