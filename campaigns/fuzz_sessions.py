"""
The long fuzzing campaign over sockets: the fuzzer of the suite
(L{tests.e2e.fuzz}) for as many sessions as asked, from several client
processes at once, against a C{twistd exmta} started for it on loopback.
Not part of the test suite.

From the checkout, with the venv's Python (its C{twistd} runs the server)::

    .venv/bin/python -m campaigns.fuzz_sessions --sessions 100000 --seed 1 --clients 4
    .venv/bin/python -m campaigns.fuzz_sessions --sessions 100000 --seed 2 --workers 2

Each session is followed by a fresh EHLO on the same connector.  It stops
at the first broken rule, naming the session (C{--seed S --first N
--sessions 1 --clients 1} replays it), and at the end prints the counts:
sessions, replies and reply lines checked, octets sent, messages accepted,
tracebacks in the server log and problems in the delivered messages
(both must be 0; see L{tests.e2e.fuzz}), the server's resident memory
(main process and workers, sampled every 5 s) and the wall time.
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time

from bench.measure import descendants, processRss
from tests.e2e import fuzz
from tests.e2e.harness import ServerProcess


def _runShare(ports, seed, first, sessions):
    return fuzz.campaign(ports, seed, sessions, first=first)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--first", type=int, default=0, help="number of the first session")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--workers", type=int, default=0, help="twistd exmta --workers")
    options = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="exmta-fuzz-")
    config, ports = fuzz.makeOrganization(folder)
    server = ServerProcess(config, sockets=4, workers=options.workers)
    print(f"server in {folder}, workers={options.workers}", file=sys.stderr)
    start = time.monotonic()
    stats = fuzz.Stats()
    share, extra = divmod(options.sessions, options.clients)
    failure = None
    try:
        with fuzz.draining(server), concurrent.futures.ProcessPoolExecutor(options.clients) as pool:
            futures, first = [], options.first
            for client in range(options.clients):
                count = share + (client < extra)
                futures.append(pool.submit(_runShare, ports, options.seed, first, count))
                first += count
            pending, peak = set(futures), 0
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=5)
                for future in done:
                    try:
                        stats.add(future.result())
                    except Exception as problem:
                        failure = problem
                pid = server.process.pid
                memory = sum(processRss(process) for process in [pid] + descendants(pid))
                peak = max(peak, memory)
    finally:
        server.stop()
    wall = time.monotonic() - start
    found = fuzz.tracebacks("\n".join(server.output))
    stored = fuzz.storedProblems(os.path.join(folder, "var", "mailboxes"))
    print(f"{stats}, tracebacks={len(found)}, stored problems={len(stored)}, server RSS peak={peak / 2**20:.0f} MiB "
          f"(end {memory / 2**20:.0f} MiB), "
          f"wall time={wall:.0f} s ({stats.sessions / wall:.0f} sessions/s)")
    for line in found[:20] + stored[:20]:
        print(line)
    if failure is not None:
        print(f"FAILED at {time.monotonic():.3f}: {failure}")
        print("\n".join(server.output[-40:]))
    return 1 if failure is not None or found or stored else 0


if __name__ == "__main__":
    sys.exit(main())
