"""
The AUTH flood of issue 11: 20 parallel connections from one loopback
address, each sending C{AUTH PLAIN} with a wrong password for an existing
account and hanging up 0.3 s later (or at the answer, if one comes first),
for 20 s; meanwhile a legitimate client on another loopback address logs in
to the same account with the right password once a second, and the
server's memory (RSS), threads and CPU are sampled.  After the flood, the
sampling goes on until the server has been idle for 3 s, to show how long
it kept working for guessers that had gone.  See campaigns/README.rst.

    .venv/bin/python campaigns/authflood.py                    # the working tree
    .venv/bin/python campaigns/authflood.py --exmta-rev 5099cd9  # a revision

The server is C{twistd -n exmta} on the measured source with an org.ini of
one receive connector (BasicAuth, Exchange's defaults: AuthTarpitInterval
5 s, MaxLogonFailures 3) and MaxInboundConnectionPerSource unlimited, so
that it is the AUTH path that is measured, not the connection limit.  The
account is made by the measured source's own C{exmta account set}, so its
password hash has that revision's parameters.  Needs no root.
"""

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from bench.measure import percentile, processCpu, processRss  # noqa: E402
from bench.peers import freePort, waitForGreeting  # noqa: E402
from bench.run import exportRevision  # noqa: E402

ACCOUNT = "kim@fabrikam.com"
PASSWORD = "Kim-Pa55word"
FLOOD_SOURCE = "127.0.0.2"
LEGITIMATE_SOURCE = "127.0.0.3"
PROBE_TIMEOUT = 30.0

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

[ReceiveConnector Client HubA]
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = Tls, BasicAuth
PermissionGroups = ExchangeUsers
MaxInboundConnectionPerSource = unlimited
"""


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Server:
    """
    C{twistd -n exmta} on C{source}, its log in the folder.
    """

    def __init__(self, python, source, folder):
        self.python = python
        self.source = source
        self.folder = folder
        self.port = freePort()
        os.makedirs(folder)
        self.config = os.path.join(folder, "org.ini")
        with open(self.config, "w") as handle:
            handle.write(ORGANIZATION.format(port=self.port))
        environment = self._environment()
        subprocess.run(
            [python, "-m", "exmta.cli", "account", "set", "-c", self.config, ACCOUNT],
            input=PASSWORD + "\n", text=True, env=environment, cwd=folder, check=True,
            capture_output=True,
        )
        self.logPath = os.path.join(folder, "twistd.log")
        self._log = open(self.logPath, "ab")
        twistd = os.path.join(os.path.dirname(python), "twistd")
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "exmta", "-c", self.config],
            cwd=folder, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
        )
        waitForGreeting("127.0.0.1", self.port, process=self.process, log=self.log)

    def _environment(self):
        environment = dict(os.environ, PYTHONPATH=self.source, PYTHONDONTWRITEBYTECODE="1")
        environment.pop("PYTHONUNBUFFERED", None)
        return environment

    def log(self):
        with open(self.logPath, errors="replace") as handle:
            return handle.read()

    def sample(self):
        """
        @return: (RSS in MB, threads, CPU seconds so far).
        """
        pid = self.process.pid
        threads = 0
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("Threads:"):
                        threads = int(line.split()[1])
        except OSError:
            pass
        return processRss(pid) / 2**20, threads, processCpu(pid)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self._log.close()


async def readReply(reader):
    """
    @return: the code of the next reply (multi-line replies read whole).
    """
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def guesser(port, until, stats):
    """
    Connect, EHLO, AUTH PLAIN with a wrong password, hang up 0.3 s later or
    at the answer; again until C{until}.
    """
    loop = asyncio.get_running_loop()
    number = 0
    while loop.time() < until:
        number += 1
        writer = None
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(FLOOD_SOURCE, 0)
            )
            await readReply(reader)
            writer.write(b"EHLO guesser.example\r\n")
            await readReply(reader)
            writer.write(f"AUTH PLAIN {plain(ACCOUNT, f'guess-{id(stats)}-{number}')}\r\n".encode())
            stats["guesses"] += 1
            try:
                code = await asyncio.wait_for(readReply(reader), 0.3)
                stats["answers"][code] = stats["answers"].get(code, 0) + 1
            except asyncio.TimeoutError:
                stats["hungUp"] += 1
        except (OSError, ConnectionError) as error:
            stats["errors"][type(error).__name__] = stats["errors"].get(type(error).__name__, 0) + 1
        finally:
            if writer is not None:
                writer.close()


async def legitimateLogin(port):
    """
    @return: (seconds from connecting to the AUTH answer, the answer's
        code), the code L{None} if no answer came in L{PROBE_TIMEOUT}.
    """
    started = time.monotonic()
    writer = None
    try:
        async def login():
            nonlocal writer
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(LEGITIMATE_SOURCE, 0)
            )
            await readReply(reader)
            writer.write(b"EHLO client.fabrikam.com\r\n")
            await readReply(reader)
            writer.write(f"AUTH PLAIN {plain(ACCOUNT, PASSWORD)}\r\n".encode())
            return await readReply(reader)

        code = await asyncio.wait_for(login(), PROBE_TIMEOUT)
    except (asyncio.TimeoutError, OSError, ConnectionError):
        code = None
    finally:
        if writer is not None:
            writer.close()
    return time.monotonic() - started, code


async def probeEvery(port, interval, until, results):
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        started = loop.time()
        results.append(await legitimateLogin(port))
        await asyncio.sleep(max(0.0, interval - (loop.time() - started)))


async def campaign(server, connections, duration):
    loop = asyncio.get_running_loop()
    baseline = [await legitimateLogin(server.port) for _ in range(5)]
    samples = []
    phase = ["flood"]

    async def sampler():
        while True:
            rss, threads, cpu = server.sample()
            samples.append((phase[0], loop.time(), rss, threads, cpu))
            await asyncio.sleep(0.5)

    sampling = asyncio.ensure_future(sampler())
    stats = {"guesses": 0, "hungUp": 0, "answers": {}, "errors": {}}
    started = loop.time()
    until = started + duration
    during = []
    probing = asyncio.ensure_future(probeEvery(server.port, 1.0, until, during))
    await asyncio.gather(*(guesser(server.port, until, stats) for _ in range(connections)))
    floodEnded = loop.time()
    # A probe still waiting for its answer finishes (at most PROBE_TIMEOUT).
    await probing
    phase[0] = "after"
    # Idle again once the server's CPU has moved less than 0.05 s in 3 s;
    # no probes meanwhile, as their own logins would keep it busy.
    window = [server.sample()[2]]
    while loop.time() - floodEnded < 300:
        await asyncio.sleep(0.5)
        window = (window + [server.sample()[2]])[-7:]
        if len(window) == 7 and window[-1] - window[0] < 0.05:
            break
    busyAfter = loop.time() - floodEnded - 3
    after = [await legitimateLogin(server.port) for _ in range(5)]
    sampling.cancel()
    return {
        "baseline": baseline,
        "during": during,
        "after": after,
        "samples": samples,
        "flood": stats,
        "floodSeconds": floodEnded - started,
        "busyAfterFloodSeconds": busyAfter,
    }


def summarize(result, log):
    def latencies(probes):
        answered = [seconds for seconds, code in probes if code is not None]
        codes = {}
        for _, code in probes:
            codes[code] = codes.get(code, 0) + 1
        if not answered:
            return f"no answer in {len(probes)} probes"
        return (
            f"{len(probes)} probes, answers {codes}, median {percentile(answered, 0.5):.3f} s, "
            f"max {max(answered):.3f} s"
        )

    flood = [s for s in result["samples"] if s[0] == "flood"]
    everything = result["samples"]
    lines = [
        f"flood: {result['flood']['guesses']} guesses in {result['floodSeconds']:.1f} s "
        f"({result['flood']['hungUp']} hung up unanswered, answers {result['flood']['answers']}, "
        f"errors {result['flood']['errors']})",
        f"server log: {log.count('failed login')} failed logins, "
        f"{log.count('abandoned login')} abandoned during their check, "
        f"{log.count('refusing logons')} throttle notices",
        f"server log lines: {log.count(chr(10))}",
        f"legitimate login before: {latencies(result['baseline'])}",
        f"legitimate login during: {latencies(result['during'])}",
        f"server busy after the flood: {result['busyAfterFloodSeconds']:.1f} s",
        f"legitimate login after that: {latencies(result['after'])}",
    ]
    if everything:
        lines.append(
            f"RSS MB: start {everything[0][2]:.0f}, max during flood "
            f"{max(s[2] for s in flood):.0f}, max overall {max(s[2] for s in everything):.0f}, "
            f"end {everything[-1][2]:.0f}"
        )
        lines.append(
            f"threads: start {everything[0][3]}, max {max(s[3] for s in everything)}, "
            f"end {everything[-1][3]}"
        )
        lines.append(f"server CPU: {everything[-1][4] - everything[0][4]:.1f} s over the run")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--exmta-source", default=REPOSITORY,
                        help="the checkout exmta is run from (default: this one)")
    source.add_argument("--exmta-rev", help="measure this git revision (exported with git archive)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python (venv) whose twistd runs exmta (default: this one)")
    parser.add_argument("--connections", type=int, default=20, help="parallel guessers (20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the flood (20)")
    parser.add_argument("--json", help="also write the raw results here")
    arguments = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="authflood-")
    source = arguments.exmta_source
    if arguments.exmta_rev:
        source = exportRevision(arguments.exmta_rev, folder)
    server = Server(arguments.python, source, os.path.join(folder, "server"))
    try:
        result = asyncio.run(campaign(server, arguments.connections, arguments.seconds))
    finally:
        server.stop()
    log = server.log()
    print(f"exmta from {arguments.exmta_rev or source}")
    print(summarize(result, log))
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
