"""
exmta against Postfix, back to back, on the targets of issue 6.

    /work/venv/bin/python bench/run.py            # everything, under 15 minutes
    /work/venv/bin/python bench/run.py --quick    # about 2½ minutes: no queue, diagnostic or profile

Needs root (private Postfix instances) and Debian's postfix package
(postfix, smtp-source, smtp-sink).  See bench/README.rst for what each
figure means.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from bench import targets  # noqa: E402
from bench.peers import raiseFileLimit  # noqa: E402

TARGETS = ["accept-1k-20", "accept-1k-100", "accept-100k-20", "latency-1k-100", "relay-1k-20",
           "idle-10k", "smarthost-refusing", "workers", "workers-100k", "queue", "smarthost-down",
           "profile"]
QUICK_TARGETS = TARGETS[:7]

PROFILES = {
    # Messages a round: 1 KB at 20 and at 100 sessions, 100 KB, relay,
    # latency (smtp-source's part); idle sessions; queue size.  Sized so
    # that the slowest server's round lasts seconds, not minutes.
    "quick": dict(rounds=3, messages1k=1500, messages1k100=400, messages100k=150,
                  relayMessages=800, latencyMessages=300, idleSessions=10000, queueSize=0),
    "full": dict(rounds=5, messages1k=4000, messages1k100=1000, messages100k=400,
                 relayMessages=3000, latencyMessages=1000, idleSessions=10000, queueSize=20000),
}


def machine(folder, python, source):
    """
    @return: [(label, value)] describing the machine and the software.
    """
    def first(path, prefix):
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith(prefix):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    def command(*arguments):
        try:
            return subprocess.run(arguments, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"

    filesystem = command("df", "--output=fstype,source", folder).splitlines()[-1:] or ["?"]
    mounts = "?"
    try:
        target = command("df", "--output=target", folder).splitlines()[-1]
        with open("/proc/mounts") as handle:
            for line in handle:
                parts = line.split()
                if parts[1] == target:
                    mounts = f"{parts[2]} ({parts[3]})"
    except (OSError, IndexError):
        pass
    revision = command("git", "-C", source, "rev-parse", "--short", "HEAD") or "(not a git checkout)"
    dirty = command("git", "-C", source, "status", "--porcelain", "--untracked-files=no", "exmta")
    return [
        ("CPU", first("/proc/cpuinfo", "model name")),
        ("cores", str(os.cpu_count())),
        ("memory", f"{int(first('/proc/meminfo', 'MemTotal').split()[0]) // 1024:,} MB"),
        ("kernel", platform.release()),
        ("filesystem", f"{folder}: {mounts or filesystem[0]}"),
        ("Python", command(python, "-c", "import sys; print(sys.version.split()[0])")),
        ("Twisted", command(python, "-c", "import twisted; print(twisted.__version__)")),
        ("Postfix", command("postconf", "-dh", "mail_version")),
        ("exmta", f"{source} at {revision}" + (" with uncommitted changes in exmta/" if dirty else "")),
    ]


def exportRevision(revision, folder):
    """
    A clean copy of exmta at a git revision (git archive), for measuring a
    commit rather than the working tree.
    """
    destination = tempfile.mkdtemp(prefix="bench-source-", dir=folder)
    archive = subprocess.run(["git", "-C", REPOSITORY, "archive", revision, "exmta", "twisted"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", destination], input=archive.stdout, check=True)
    with open(os.path.join(destination, "REVISION"), "w") as handle:
        handle.write(subprocess.run(["git", "-C", REPOSITORY, "rev-parse", revision],
                                    capture_output=True, text=True, check=True).stdout)
    return destination


def main(argv=None):
    parser = argparse.ArgumentParser(description="exmta against Postfix on the targets of issue 6.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and messages; no queue, diagnostic or profile targets (about 2½ minutes)")
    parser.add_argument("--only", help="comma-separated targets: " + ", ".join(TARGETS))
    parser.add_argument("--rounds", type=int, help="rounds per target (default 3 quick, 5 full)")
    parser.add_argument("--messages", type=int,
                        help="1 KB messages a round at 20 sessions; the other rounds scale with it")
    parser.add_argument("--queue-size", type=int, help="messages in the queue target (default 20,000)")
    parser.add_argument("--idle-sessions", type=int, help="idle sessions (default 10,000)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python (venv) whose twistd runs exmta (default: this one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--exmta-source", default=REPOSITORY,
                        help="the checkout exmta is run from (default: this one, working tree)")
    source.add_argument("--exmta-rev", help="measure this git revision instead (exported with git archive)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(),
                        help="where the servers' queues go (default: the system's temp folder)")
    parser.add_argument("--exmta-workers", type=int, default=0,
                        help="run every exmta with twistd exmta --workers N (default 0); "
                             "the workers targets compare 0, 1 and 2")
    parser.add_argument("--json", help="also write the results here, as JSON")
    parser.add_argument("--profile-output",
                        help="keep the py-spy profiles (raw, collapsed stacks) as PREFIX-1k.txt, PREFIX-100k.txt, PREFIX-relay-1k.txt")
    arguments = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("run as root: the private Postfix instances need it")
    for tool in ("postfix", "smtp-source", "smtp-sink"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            parser.error(f"{tool} is missing: apt-get install postfix (see bench/README.rst)")
    os.environ["PATH"] += os.pathsep + "/usr/sbin"
    raiseFileLimit()

    chosen = QUICK_TARGETS if arguments.quick else TARGETS
    if arguments.only:
        chosen = [name.strip() for name in arguments.only.split(",")]
        unknown = set(chosen) - set(TARGETS)
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    values = dict(PROFILES["quick" if arguments.quick else "full"])
    if arguments.rounds:
        values["rounds"] = arguments.rounds
    if arguments.messages:
        scale = arguments.messages / values["messages1k"]
        for name in ("messages1k", "messages1k100", "messages100k", "relayMessages", "latencyMessages"):
            values[name] = max(10, int(values[name] * scale))
    if arguments.queue_size:
        values["queueSize"] = arguments.queue_size
    if arguments.idle_sessions:
        values["idleSessions"] = arguments.idle_sessions

    folder = tempfile.mkdtemp(prefix="exmta-bench-", dir=arguments.tmp)
    os.chmod(folder, 0o755)
    exmtaSource = arguments.exmta_source
    if arguments.exmta_rev:
        exmtaSource = exportRevision(arguments.exmta_rev, folder)
    settings = targets.Settings(python=arguments.python, source=exmtaSource, folder=folder,
                                log=lambda line: print(line, file=sys.stderr, flush=True),
                                workers=arguments.exmta_workers, **values)

    started = time.monotonic()
    header = machine(folder, arguments.python, arguments.exmta_source)
    if arguments.exmta_rev:
        with open(os.path.join(exmtaSource, "REVISION")) as handle:
            commit = handle.read().strip()
        header[-1] = ("exmta", f"git revision {arguments.exmta_rev} = {commit[:12]} (exported clean)")
    print("exmta benchmark against Postfix (issue 6)")
    print("=========================================\n")
    for label, value in header:
        print(f":{label}: {value}")
    print(f":mode: {'quick' if arguments.quick else 'full'}, {values['rounds']} rounds a target, "
          "exmta/Postfix back to back in each round (order alternating)\n")
    sys.stdout.flush()

    results = []
    relayRate = None
    try:
        for name in chosen:
            print(f"[{time.monotonic() - started:6.0f} s] {name}", file=sys.stderr, flush=True)
            if name == "accept-1k-20":
                result = targets.acceptance(settings, name, 1000, 20, values["messages1k"], 1.0)
            elif name == "accept-1k-100":
                result = targets.acceptance(settings, name, 1000, 100, values["messages1k100"], 1.2)
            elif name == "accept-100k-20":
                result = targets.acceptance(settings, name, 100_000, 20, values["messages100k"], 1.0)
            elif name == "latency-1k-100":
                result = targets.latency(settings, name)
            elif name == "relay-1k-20":
                result = targets.relay(settings, name)
                relayRate = result.data.get("postfixRate")
            elif name == "idle-10k":
                result = targets.idle(settings, name)
            elif name == "queue":
                if not values["queueSize"]:
                    continue
                result = targets.queue(settings, name, relayRate)
            elif name == "workers":
                result = targets.workers(settings, name)
            elif name == "workers-100k":
                result = targets.workers(settings, name, size=100_000)
            elif name == "smarthost-refusing":
                result = targets.smartHostRefusing(settings, name)
            elif name == "smarthost-down":
                result = targets.smartHostDown(settings, name)
            elif name == "profile":
                for label, size, messages, relay in (("1k", 1000, 5000, False), ("100k", 100_000, 500, False),
                                                     ("relay-1k", 1000, 3000, True)):
                    output = arguments.profile_output and f"{arguments.profile_output}-{label}.txt"
                    result = targets.profile(settings, f"profile-{label}", messages=messages,
                                             size=size, output=output, relay=relay)
                    _show(results, result)
                continue
            _show(results, result)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print("Summary")
    print("-------\n")
    for result in results:
        for verdict in result.verdicts:
            print(f"* {result.key}: {verdict}")
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump({"machine": dict(header), "settings": values,
                       "results": [{"key": r.key, "title": r.title, "columns": r.columns, "rows": r.rows,
                                    "notes": r.notes, "verdicts": r.verdicts,
                                    "data": _jsonable(r.data)} for r in results]},
                      handle, indent=1, ensure_ascii=False)


def _show(results, result):
    results.append(result)
    print(result.text())
    if result.data.get("summary"):
        print("::\n")
        print("\n".join("    " + line for line in result.data["summary"].splitlines()))
        print()
    sys.stdout.flush()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


if __name__ == "__main__":
    main()
