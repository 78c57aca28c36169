"""
The crash soak of issue 11: mail received and relayed to a smart host on
loopback while the server is killed with SIGKILL every ~20 s and started
again on the same queue, 20 times, as one process and then with
C{--workers 2}.  Every message whose client heard 250 must reach the smart
host at least once, intact; duplicates are counted.  See
campaigns/README.rst; the machinery is tests/e2e/soak.py, which the suite
runs for 3 kills (tests/e2e/test_crash_soak.py).

    .venv/bin/python campaigns/crashsoak.py            # about 15 minutes
    .venv/bin/python campaigns/crashsoak.py --cycles 3 --interval 5 --workers 2

Exit status 1 if an acknowledged message was lost or damaged; the run's
folder (queue, tracking log, server logs) is then kept and named.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from tests.e2e.soak import soak  # noqa: E402


def revision():
    described = subprocess.run(
        ["git", "-C", REPOSITORY, "describe", "--always", "--dirty"],
        capture_output=True, text=True,
    )
    return described.stdout.strip() or "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="kills per mode (20)")
    parser.add_argument("--interval", type=float, default=20.0,
                        help="seconds from a start to the next kill (20)")
    parser.add_argument("--clients", type=int, default=4, help="client threads sending (4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="the modes, as --workers values run in turn (0 2; 0 is one process)")
    arguments = parser.parse_args(argv)

    print(f"exmta {revision()}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} CPUs; {arguments.cycles} kills {arguments.interval:g} s apart, "
          f"{arguments.clients} clients\n")
    failed = False
    for workers in arguments.workers:
        folder = tempfile.mkdtemp(prefix=f"crashsoak-workers{workers}-")
        print(f"--workers {workers} in {folder}", file=sys.stderr, flush=True)
        report = soak(
            folder, workers=workers, cycles=arguments.cycles, interval=arguments.interval,
            clients=arguments.clients,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        print("\n".join(report.lines()))
        if report.passed:
            shutil.rmtree(folder)
        else:
            failed = True
            print(f"FAILED: kept {folder}; lost: {sorted(report.lost)[:20]}, "
                  f"damaged: {sorted(report.damaged)[:20]}")
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
