"""
The slowloris campaign: many connections that trickle bytes into a
C{twistd exmta} started for it on loopback, while the server's memory and
a legitimate client's latency are recorded.  Not part of the test suite.

From the checkout, with the venv's Python::

    .venv/bin/python -m campaigns.slowloris --connections 4000 --sources 200 --attack 60
    .venv/bin/python -m campaigns.slowloris --workers 2

The server runs an Internet receive connector with Exchange 2010's
defaults (MaxInboundConnection 5000, MaxInboundConnectionPerSource 20,
ConnectionInactivityTimeout 5 minutes, ConnectionTimeout 10 minutes).
The attackers come from C{--sources} loopback addresses; each connection
holds one of three slow states, a byte every C{--interval} seconds:

  - a command line that never ends (C{EHLO} and then one letter at a time),
  - a message that never ends (after C{DATA}, one letter at a time),
  - idle commands (C{NOOP} a letter at a time, so a whole one now and then).

Meanwhile a legitimate client on another address sends a small message
every half second (connect, EHLO, MAIL, RCPT, DATA, QUIT) and the time of
each transaction is kept.  The report gives, before, during and after the
attack: the legitimate client's median, p95 and worst time and its
failures, the server's resident memory (main process and workers), and the
attack's connections admitted and refused.
"""

import argparse
import asyncio
import smtplib
import sys
import tempfile
import time

from bench.measure import descendants, percentile, processRss
from bench.peers import raiseFileLimit
from tests.e2e.fuzz import draining
from tests.e2e.harness import ServerProcess, freePort, writeOrganization

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.3:{port}
"""

LEGITIMATE_SOURCE = "127.0.9.1"
MESSAGE = b"From: a@contoso.com\r\nSubject: legitimate\r\n\r\nHello.\r\n"
MODES = ("line", "data", "idle")


class Attack:
    def __init__(self):
        self.admitted = 0
        self.refused = 0
        self.failed = 0
        self.open = 0
        self.peakOpen = 0


async def slowConnection(host, port, source, mode, interval, stop, attack):
    """
    One slow client: connect, get into C{mode}'s state, then send a byte
    every C{interval} seconds until C{stop} is set or the server closes.
    """
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        greeting = await reader.readline()
    except OSError:
        attack.failed += 1
        return
    if not greeting.startswith(b"220"):
        attack.refused += 1
        writer.close()
        return
    attack.admitted += 1
    attack.open += 1
    attack.peakOpen = max(attack.peakOpen, attack.open)
    drain = asyncio.ensure_future(_drain(reader))
    opening = {
        "line": b"EHLO ",
        "data": b"EHLO slow\r\nMAIL FROM:<a@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n",
        "idle": b"EHLO slow\r\n",
    }[mode]
    trickle = b"NOOP\r\n" if mode == "idle" else b"x"
    try:
        writer.write(opening)
        sent = 0
        while not stop.is_set() and not drain.done():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
            writer.write(trickle[sent % len(trickle):][:1])
            sent += 1
            await writer.drain()
    except OSError:
        pass
    finally:
        attack.open -= 1
        drain.cancel()
        writer.close()


async def _drain(reader):
    while await reader.read(65536):
        pass


def legitimateTransaction(host, port):
    """
    @return: seconds for one whole transaction, or L{None} if it failed.
    """
    start = time.monotonic()
    try:
        with smtplib.SMTP(host, port, timeout=30, source_address=(LEGITIMATE_SOURCE, 0)) as smtp:
            smtp.ehlo("legitimate.contoso.com")
            smtp.sendmail("a@contoso.com", ["kim@fabrikam.com"], MESSAGE)
    except (OSError, smtplib.SMTPException):
        return None
    return time.monotonic() - start


async def measure(host, port, serverPid, seconds, phase, samples):
    """
    For C{seconds}: a legitimate transaction every half second, and the
    server's memory every second, recorded under C{phase}.
    """
    deadline = time.monotonic() + seconds
    nextMemory = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        latency = await asyncio.to_thread(legitimateTransaction, host, port)
        samples.setdefault(phase, {"latency": [], "failures": 0, "memory": []})
        if latency is None:
            samples[phase]["failures"] += 1
        else:
            samples[phase]["latency"].append(latency)
        if started >= nextMemory:
            rss = sum(processRss(pid) for pid in [serverPid] + descendants(serverPid))
            samples[phase]["memory"].append(rss)
            nextMemory = started + 1
        await asyncio.sleep(max(0, 0.5 - (time.monotonic() - started)))


async def campaign(options, host, port, serverPid):
    samples = {}
    attack = Attack()
    await measure(host, port, serverPid, options.baseline, "before", samples)
    stop = asyncio.Event()
    sources = [f"127.0.{10 + n // 250}.{1 + n % 250}" for n in range(options.sources)]
    connections = []
    rampStart = time.monotonic()
    for number in range(options.connections):
        connections.append(asyncio.ensure_future(slowConnection(
            host, port, sources[number % len(sources)], MODES[number % len(MODES)],
            options.interval, stop, attack)))
        if number % 100 == 99:
            await asyncio.sleep(0.05)
    while attack.admitted + attack.refused + attack.failed < options.connections:
        await asyncio.sleep(0.1)
    ramp = time.monotonic() - rampStart
    await measure(host, port, serverPid, options.attack, "during", samples)
    stop.set()
    await asyncio.gather(*connections)
    await measure(host, port, serverPid, options.baseline, "after", samples)
    return samples, attack, ramp


def report(samples, attack, ramp, options):
    print(f"slowloris: {options.connections} connections from {options.sources} sources, "
          f"a byte every {options.interval:g} s, attack {options.attack:g} s "
          f"(opened in {ramp:.1f} s), workers={options.workers}")
    print(f"attack: admitted {attack.admitted}, refused {attack.refused} (421), "
          f"failed to connect {attack.failed}, at most {attack.peakOpen} open at once")
    print(f"{'phase':8} {'transactions':>12} {'failures':>8} {'median ms':>9} {'p95 ms':>7} "
          f"{'worst ms':>8} {'RSS MiB (max)':>13}")
    for phase in ("before", "during", "after"):
        data = samples.get(phase, {"latency": [], "failures": 0, "memory": [0]})
        latency = data["latency"]
        print(f"{phase:8} {len(latency):12} {data['failures']:8} "
              f"{percentile(latency, 0.5) * 1000:9.1f} {percentile(latency, 0.95) * 1000:7.1f} "
              f"{max(latency, default=float('nan')) * 1000:8.1f} "
              f"{max(data['memory'], default=0) / 2**20:13.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--sources", type=int, default=200,
                        help="attacking addresses (MaxInboundConnectionPerSource is 20)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between bytes")
    parser.add_argument("--attack", type=float, default=60.0, help="seconds the attack is held")
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds measured before and after")
    parser.add_argument("--workers", type=int, default=0, help="twistd exmta --workers")
    options = parser.parse_args(argv)
    raiseFileLimit(options.connections * 2 + 1000)
    folder = tempfile.mkdtemp(prefix="exmta-slowloris-")
    port = freePort("127.0.0.3")
    config = writeOrganization(folder, ORGANIZATION.format(port=port))
    server = ServerProcess(config, sockets=1, workers=options.workers)
    try:
        with draining(server):
            samples, attack, ramp = asyncio.run(
                campaign(options, "127.0.0.3", port, server.process.pid))
    finally:
        server.stop()
    report(samples, attack, ramp, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
