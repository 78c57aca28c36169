"""
Edit org.ini as text, the way an administrator would with an editor: what
a change does not touch stays byte for byte as it was (comments, blank
lines, the order of sections and keys, line endings, a byte order mark).

Two layers:

  - L{Document}: org.ini's text as lines, with the sections found in it;
    add a section, set or remove a key, rename or remove a section.  Pure:
    no I/O.
  - L{editing}: a change to org.ini where it is stored
    (L{exmta.config.storage}).  For a file it holds an exclusive lock on
    C{<org.ini>.lock} from before it reads the file until after it has
    written it, and replaces the file atomically
    (L{exmta.durable.replaceFile}: a temporary file in the same folder,
    fsynced, renamed over org.ini, the folder fsynced), so a reader or a
    crash never sees half a file.  On etcd the write compares the key's
    revision instead, and a change that lost the race is done again on the
    new text (L{modify}, L{retrying}).  Either way two Shells editing at
    once never lose each other's change, and the new text is validated
    with the server's own rules (L{exmta.config.parseOrganization}) before
    anything is written, so a change the server would refuse is refused
    and org.ini is untouched.  C{diff()} shows the change as a unified
    diff, for -WhatIf.

Values are written in org.ini's syntax by L{formatValue}: C{$true} and
C{$false}, comma lists, time spans as C{[d.]hh:mm:ss}, other values as
given.
"""

import datetime
import difflib
import re
from contextlib import contextmanager
from dataclasses import dataclass

from exmta.config.storage import storageFor
from exmta.config.values import formatTimespan
from exmta.errors import ConfigError

_ENDINGS = re.compile(r"(\r\n|\r|\n)")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
_BOM = "\ufeff"


def formatValue(value):
    """
    @return: C{value} as org.ini text: C{$true}/C{$false} for booleans,
        C{hh:mm:ss} for a L{datetime.timedelta}, a comma list for a tuple,
        list or set, C{str()} of anything else.
    @raise ValueError: the text would not stay on one line.
    """
    if isinstance(value, bool):
        text = "$true" if value else "$false"
    elif isinstance(value, datetime.timedelta):
        text = formatTimespan(value.total_seconds())
    elif isinstance(value, (tuple, list, set, frozenset)):
        text = ", ".join(formatValue(item) for item in value)
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return checkText(text.strip(), "a value")


def checkText(text, what):
    """
    @return: C{text}, if it can stand on one line of org.ini.
    @raise ValueError: it holds a line break or another control character,
        which would let a value start a new key or section.
    """
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]", text):
        raise ValueError(f"{what} cannot hold a line break or control character: {text!r}")
    return text


@dataclass(frozen=True)
class Span:
    """
    Where one section stands in a L{Document}, valid until the document
    next changes.

    @ivar kind: the section kind as written (C{ReceiveConnector}).
    @ivar name: the section name as written; empty for [ADPermission].
    @ivar start: the index of its first line: the comment block directly
        above its header (no blank line between), or the header itself.
    @ivar header: the index of its header line.
    @ivar end: the index after its last line (blank lines before the next
        section's comment block or header included).
    @ivar keys: C{(key, value, line index)} of its keys, in order.
    """

    kind: str
    name: str
    start: int
    header: int
    end: int
    keys: tuple

    def get(self, key):
        """
        @return: the value of C{key} (matched case-insensitively) as
            written, or L{None}.
        """
        entry = self._entry(key)
        return None if entry is None else entry[1]

    def _entry(self, key):
        lowered = key.lower()
        for entry in self.keys:
            if entry[0].lower() == lowered:
                return entry
        return None

    def matches(self, kind, name=None):
        return self.kind.lower() == kind.lower() and (
            name is None or self.name.lower() == name.strip().lower()
        )


class Document:
    """
    The text of org.ini as a list of lines, each with its own line ending.
    Changes keep every other line as it was.
    """

    def __init__(self, text):
        self.bom = text.startswith(_BOM)
        if self.bom:
            text = text[1:]
        parts = _ENDINGS.split(text)
        self._lines = [[parts[i], parts[i + 1]] for i in range(0, len(parts) - 1, 2)]
        if parts[-1]:
            self._lines.append([parts[-1], ""])
        endings = [ending for _, ending in self._lines if ending]
        self.newline = endings[0] if endings else "\n"
        self._scan()

    @property
    def text(self):
        return (_BOM if self.bom else "") + "".join(c + e for c, e in self._lines)

    def sections(self, kind=None):
        """
        @return: the L{Span}s of the sections of C{kind} (every section when
            L{None}), in file order.
        """
        return [s for s in self._spans if kind is None or s.matches(kind)]

    def section(self, kind, name):
        """
        @return: the L{Span} of C{[kind name]}, both matched
            case-insensitively, or L{None}.
        """
        for span in self._spans:
            if span.matches(kind, name):
                return span
        return None

    def addSection(self, kind, name, entries=()):
        """
        Add C{[kind name]} with C{entries}, after the last section of the
        same kind, else at the end; blank lines separate it from its
        neighbours as the sections around it are separated.

        @param entries: C{(key, value)} pairs; values go through
            L{formatValue}, and L{None} values are left out.
        @return: the new section's L{Span}.
        """
        if not _KIND.fullmatch(kind):
            raise ValueError(f"{kind!r} is not a section kind")
        name = checkText(name.strip(), "a name")
        if "]" in name or "[" in name:
            raise ValueError(f"a name cannot hold '[' or ']': {name!r}")
        block = [f"[{kind} {name}]" if name else f"[{kind}]"]
        for key, value in entries:
            if value is not None:
                block.append(f"{_checkKey(key)} = {formatValue(value)}")

        same = self.sections(kind)
        if same:
            last = same[-1]
            separator = self._trailingBlanks(last.header + 1, last.end)
            at = last.end - separator
            lines = [""] * max(separator, 1) + block
            if separator == 0 and at < len(self._lines):
                lines.append("")
        else:
            at = len(self._lines)
            trailing = self._trailingBlanks(0, at)
            if trailing or not self._lines:
                lines = block
            else:
                lines = [""] * max(self._separator(), 1) + block
        self._insert(at, lines)
        return self.section(kind, name) if name else self.sections(kind)[-1]

    def set(self, span, key, value):
        """
        Set C{key} in the section C{span} to C{value} (through
        L{formatValue}): on the key's own line when it is set, keeping its
        spelling and the spaces around C{=}; else on a new line after the
        section's last key (after its header when it has none).  A value of
        L{None} removes the key.
        """
        if value is None:
            self.remove(span, key)
            return
        text = formatValue(value)
        entry = span._entry(key)
        if entry is not None:
            line = self._lines[entry[2]]
            head, _, rest = line[0].partition("=")
            space = rest[: len(rest) - len(rest.lstrip())] or (" " if text else "")
            line[0] = f"{head}={space}{text}"
            self._scan()
            return
        after = span.keys[-1][2] if span.keys else span.header
        self._insert(after + 1, [f"{_checkKey(key)} = {text}"])

    def remove(self, span, key):
        """
        Remove C{key}'s line from the section C{span}.

        @return: whether the key was set.
        """
        entry = span._entry(key)
        if entry is None:
            return False
        del self._lines[entry[2]]
        self._scan()
        return True

    def rename(self, span, name):
        """
        Give the section C{span} the name C{name}, on its own header line.
        """
        name = checkText(name.strip(), "a name")
        if not name or "]" in name or "[" in name:
            raise ValueError(f"{name!r} is not a section name")
        self._lines[span.header][0] = f"[{span.kind} {name}]"
        self._scan()

    def removeSection(self, span):
        """
        Remove the section C{span} with the comment block directly above its
        header; a section that ends the file takes the blank lines before
        it along.
        """
        start, end = span.start, span.end
        if end == len(self._lines):
            start -= self._trailingBlanks(0, start)
        del self._lines[start:end]
        if self._lines and not self._lines[-1][1]:
            self._lines[-1][1] = self.newline
        self._scan()

    def moveBefore(self, span, other):
        """
        Move the section C{span}, with the comment block directly above its
        header, to stand before the section C{other}, a blank line between
        them (the order of sections of a kind can mean something: the first
        Authoritative accepted domain is the default).
        """
        if span.header == other.header:
            return
        block = [content for content, _ in self._lines[span.start : span.end]]
        while block and not block[-1].strip():
            block.pop()
        kind, name = other.kind, other.name
        self.removeSection(span)
        target = self.section(kind, name)
        self._insert(target.start, block + [""])

    def _insert(self, at, lines):
        if at > 0 and not self._lines[at - 1][1]:
            self._lines[at - 1][1] = self.newline
        self._lines[at:at] = [[line, self.newline] for line in lines]
        self._scan()

    def _blank(self, index):
        return not self._lines[index][0].strip()

    def _trailingBlanks(self, low, high):
        count = 0
        while high - count > low and self._blank(high - count - 1):
            count += 1
        return count

    def _separator(self):
        """
        @return: how many blank lines stand before the last section.
        """
        if not self._spans:
            return 1
        return self._trailingBlanks(0, self._spans[-1].start)

    def _scan(self):
        headers = []
        for index, (content, _) in enumerate(self._lines):
            line = content.strip()
            if line.startswith("[") and line.endswith("]"):
                words = line[1:-1].strip().split(None, 1)
                if words:
                    headers.append((index, words[0], words[1].strip() if len(words) > 1 else ""))
        spans = []
        for number, (index, kind, name) in enumerate(headers):
            start = index
            while start > 0 and self._comment(start - 1):
                start -= 1
            spans.append([kind, name, start, index])
        for number, span in enumerate(spans):
            end = spans[number + 1][2] if number + 1 < len(spans) else len(self._lines)
            keys = []
            for index in range(span[3] + 1, end):
                line = self._lines[index][0].strip()
                if not line or line[0] in "#;" or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                keys.append((key.strip(), value.strip(), index))
            span.extend([end, tuple(keys)])
        self._spans = [Span(k, n, s, h, e, keys) for k, n, s, h, e, keys in spans]

    def _comment(self, index):
        line = self._lines[index][0].strip()
        return bool(line) and line[0] in "#;"


def _checkKey(key):
    if not _KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a key name")
    return key


class Conflict(Exception):
    """
    Another writer changed org.ini's text between this edit's reading and
    its writing (only possible on etcd, where no lock is held): read it
    again and redo the change (L{retrying}).
    """


class Edit:
    """
    One change to org.ini, made inside L{editing}.

    @ivar path: what messages call org.ini (its path, or its etcd key).
    @ivar original: its text when the edit began.
    @ivar document: the L{Document} to change.
    """

    def __init__(self, storage, original, revision=None):
        self.storage = storage
        self.path = storage.name
        self.original = original
        self.revision = revision
        self.document = Document(original)
        self._validated = None

    @property
    def changed(self):
        return self.document.text != self.original

    def validate(self):
        """
        @return: the L{Organization <exmta.config.model.Organization>} the
            changed text describes.
        @raise ConfigError: the server would refuse it; the message names
            the line of the changed text, section and key at fault.
        """
        text = self.document.text
        if self._validated is None or self._validated[0] != text:
            self._validated = (text, self.storage.organization(text))
        return self._validated[1]

    def diff(self):
        """
        @return: the change as a unified diff (empty when nothing changed).
        """
        def lines(text):
            result = text.removeprefix(_BOM).splitlines(keepends=True)
            if result and not result[-1].endswith(("\n", "\r")):
                result[-1] += "\n"
            return result

        return "".join(
            difflib.unified_diff(
                lines(self.original), lines(self.document.text), self.path, self.path
            )
        )

    def write(self):
        """
        Validate the changed text, then store it in place of org.ini's:
        atomically and durably for a file, if still at the revision read
        for etcd.  Nothing is written when nothing changed.

        @raise ConfigError: see L{validate}; org.ini is left as it was.
        @raise Conflict: another writer came first; nothing was written.
        """
        self.validate()
        if self.changed and not self.storage.replace(self.document.text, self.revision):
            raise Conflict(f"{self.path} changed while this change was made")


@contextmanager
def editing(location):
    """
    Read org.ini (holding the file's write lock) and yield an L{Edit} of
    it; the caller changes C{edit.document} and calls C{edit.write()} (or
    C{edit.diff()} for -WhatIf).  The lock is released on leaving.

    @param location: org.ini's path or etcd URL (L{storageFor}).
    @raise ConfigError: org.ini cannot be read or is not UTF-8.
    """
    storage = storageFor(location)
    with storage.writing():
        text, revision = storage.read()
        yield Edit(storage, text, revision)


# How many times a change is redone on newer text before giving up: each
# retry means another administrator's change landed meanwhile.
ATTEMPTS = 20


def retrying(attempt):
    """
    Call C{attempt()} (which reads, changes and writes org.ini) again for
    as long as it raises L{Conflict}, up to L{ATTEMPTS} times.

    @return: what C{attempt} returned.
    @raise ConfigError: the text kept changing.
    """
    for _ in range(ATTEMPTS - 1):
        try:
            return attempt()
        except Conflict:
            continue
    try:
        return attempt()
    except Conflict as conflict:
        raise ConfigError(f"{conflict}, {ATTEMPTS} times in a row; try again") from None


def modify(location, change, whatIf=False):
    """
    Apply C{change} to org.ini: C{change(document)} edits the
    L{Document}; the result is validated and written, unless C{whatIf}.
    On etcd, a change that lost the race to another writer is done again
    on the new text.

    @return: C{(diff, organization)}: the unified diff of the change and
        the organization the new text describes.
    @raise ConfigError: the new text is invalid; org.ini is unchanged.
    """

    def attempt():
        with editing(location) as edit:
            change(edit.document)
            organization = edit.validate()
            diff = edit.diff()
            if not whatIf:
                edit.write()
            return diff, organization

    return retrying(attempt)
