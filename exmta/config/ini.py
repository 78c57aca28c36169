"""
The syntax of org.ini, with line numbers kept for error messages.

  - C{[Kind Name]} opens a section; C{Name} may contain spaces and may be
    omitted for kinds that allow it (C{[ADPermission]} may repeat).
  - C{Key = Value} sets a key; keys are matched case-insensitively.
  - A line whose first non-blank character is C{#} or C{;} is a comment.
    There are no trailing comments: values such as C{contoso.com;10} keep
    their C{;}.

Python's configparser is not used because it loses line numbers, folds
repeated sections and has no notion of a section kind.
"""

import re
from dataclasses import dataclass

from exmta.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Section:
    kind: str
    name: str
    line: int
    entries: tuple[Entry, ...]

    @property
    def header(self):
        return f"{self.kind} {self.name}".strip()

    def get(self, key):
        """
        @return: the L{Entry} for C{key}, matched case-insensitively, or L{None}.
        """
        lowered = key.lower()
        for entry in self.entries:
            if entry.key.lower() == lowered:
                return entry
        return None


def parse(text, path):
    """
    @return: the L{Section}s of C{text}, in order.
    @raise ConfigError: on a line that is neither a header, a key nor a comment.
    """
    sections = []
    kind = name = None
    start = 0
    entries = []
    seen = {}

    def close():
        if kind is not None:
            sections.append(Section(kind, name, start, tuple(entries)))

    # Only CR, LF and CRLF end a line, as for open() and editors; str.splitlines
    # would also split on form feeds, U+2028 and the like and so shift every
    # later line number.
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ConfigError(
                    "a section header must end with ']', e.g. [ReceiveConnector Default HubA]",
                    path,
                    number,
                )
            close()
            words = line[1:-1].strip().split(None, 1)
            if not words:
                raise ConfigError(
                    "empty section header; write [Kind Name], e.g. [AcceptedDomain fabrikam.com]",
                    path,
                    number,
                )
            kind = words[0]
            name = words[1].strip() if len(words) > 1 else ""
            start = number
            entries = []
            seen = {}
            continue
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not key or " " in key:
            raise ConfigError(
                f"expected 'Key = Value' or a [Section] header, found {line!r}",
                path,
                number,
                None if kind is None else f"{kind} {name}".strip(),
            )
        if kind is None:
            raise ConfigError(
                f"key {key!r} comes before any [Section] header", path, number, None, key
            )
        if key.lower() in seen:
            raise ConfigError(
                f"set twice in this section (first on line {seen[key.lower()]})",
                path,
                number,
                f"{kind} {name}".strip(),
                key,
            )
        seen[key.lower()] = number
        entries.append(Entry(key, value.strip(), number))
    close()
    return sections
