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


def _name(frame):
    # "function (path/to/module.py:123)" -> "function (module.py:123)"
    match = re.match(r"^(.*) \((.*?)(?::(\d+))?\)$", frame)
    if not match:
        return frame
    function, path, _ = match.groups()
    path = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(r"^.*/(exmta|bench)/", r"\1/", path)
    return f"{function} ({path})"


def summarise(stacks, excludeIdle=True):
    selfCounts = collections.Counter()
    cumulative = collections.Counter()
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
        for name in set(names):
            cumulative[name] += count
    return total, selfCounts, cumulative


def report(path, top=25, excludeIdle=True):
    total, selfCounts, cumulative = summarise(read(path), excludeIdle)
    lines = [f"{total} samples on the CPU" + (" (reactor waits left out)" if excludeIdle else "")]
    for title, counter in (("self", selfCounts), ("cumulative", cumulative)):
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
