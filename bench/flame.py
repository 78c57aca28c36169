"""
Summarise a py-spy "raw" (collapsed stacks) profile: the functions with the
most samples on the CPU, by self time and by cumulative (inclusive) time.

    python bench/flame.py profile.txt [--top 25] [--exclude-idle]
"""

import argparse
import collections
import re

# Frames in which the reactor waits for events: not time spent on mail.
IDLE = re.compile(r"^(poll|doPoll|select|epoll|_poll|wait) \(")


# Components of exmta's path, by the files their code is in.  A sample goes
# to the component of the innermost frame that matches one, so the JSON
# encoding done for the tracking log counts as JSON, and a Deferred
# callback's own time counts as Deferred machinery.
COMPONENTS = [
    ("JSON encoding (spool envelope, tracking log)", r"json/"),
    # The reactor wraps each I/O callback in twisted.python.log's
    # callWithLogger: that is not logging.
    ("reactor, TCP, timers", r"^callWith(Logger|Context) \(twisted/python/log\.py"),
    ("server log (twisted.logger: format, write)", r"twisted/logger/|twisted/python/log\.py"),
    ("message tracking log", r"exmta/tracking\.py"),
    ("protocol log", r"exmta/protocollog\.py"),
    ("Received and other headers", r"exmta/receive/headers\.py|email/"),
    ("queue manager pass, routing", r"exmta/queue/manager\.py|exmta/queue/retry\.py|exmta/routing/"),
    ("send side (pool, client)", r"exmta/send/"),
    ("spool: envelope, files, fsync", r"exmta/queue/spool\.py|exmta/durable\.py|exmta/envelope\.py"),
    ("permissions, cred login", r"exmta/auth/|twisted/cred/"),
    ("transport agents", r"exmta/plugins/|exmta/agents"),
    ("receive protocol and listener", r"exmta/receive/"),
    ("thread pool hand-off", r"twisted/_threads/|twisted/python/threadpool\.py|threading\.py|queue\.py|"
                             r"twisted/internet/threads\.py|twisted/python/context\.py"),
    ("Deferred machinery", r"twisted/internet/defer\.py"),
    ("reactor, TCP, timers", r"twisted/internet/|socket\.py|selectors\.py"),
]


def read(path):
    stacks = []
    with open(path, errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                stacks.append((stack.split(";"), int(count)))
            except ValueError:
                continue
    return stacks


def _name(frame, line=False):
    # "function (/a/b/exmta/queue/spool.py:123)" -> "function (exmta/queue/spool.py[:123])"
    match = re.match(r"^(.*) \((.*?)(?::(\d+))?\)$", frame)
    if not match:
        return frame
    function, path, number = match.groups()
    path = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(r"^.*/(exmta|bench)/", r"\1/", path)
    return f"{function} ({path}:{number})" if line and number else f"{function} ({path})"


def summarise(stacks, excludeIdle=True):
    selfCounts = collections.Counter()
    selfLines = collections.Counter()
    cumulative = collections.Counter()
    components = collections.Counter()
    patterns = [(label, re.compile(pattern)) for label, pattern in COMPONENTS]
    total = 0
    for frames, count in stacks:
        # py-spy's frames in a raw line run from the outermost to the innermost.
        names = [_name(frame) for frame in frames if not frame.startswith("process ")
                 and not frame.startswith("thread ")]
        if not names:
            continue
        if excludeIdle and IDLE.match(names[-1]):
            continue
        total += count
        selfCounts[names[-1]] += count
        selfLines[_name(frames[-1], line=True)] += count
        components[_component(frames, patterns)] += count
        for name in set(names):
            cumulative[name] += count
    return total, selfCounts, selfLines, cumulative, components


def _component(frames, patterns):
    for frame in reversed(frames):
        for label, pattern in patterns:
            if pattern.search(frame):
                return label
    return "other"


def report(path, top=25, excludeIdle=True):
    total, selfCounts, selfLines, cumulative, components = summarise(read(path), excludeIdle)
    lines = [f"{total} samples on the CPU" + (" (reactor waits left out)" if excludeIdle else "")]
    lines.append("\nBy component (innermost matching frame):")
    for name, count in components.most_common():
        lines.append(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    for title, counter in (("self", selfCounts), ("self, by line", selfLines),
                           ("cumulative", cumulative)):
        lines.append(f"\nTop {top} by {title} time:")
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--include-idle", action="store_true")
    arguments = parser.parse_args()
    print(report(arguments.profile, arguments.top, not arguments.include_idle))


if __name__ == "__main__":
    main()
