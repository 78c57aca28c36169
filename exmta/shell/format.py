"""
How the Shell shows objects: C{Format-List}, C{Format-Table} and the default
output at the end of a pipeline, as PowerShell shows them.

    Name           : ToInternetGateway
    AddressSpaces  : {SMTP:*;1}
    Enabled        : True

The objects are dataclasses, mappings, named tuples or plain objects; their
properties are their fields, keys or public attributes, in order.  A type
may name the properties its table shows by default with a class attribute
C{DefaultDisplayPropertySet = ("Identity", "AddressSpaces", "Enabled")};
without one, objects with at most four properties show as a table and
others as a list, as in PowerShell.

Secrets are never shown: a property whose name ends in C{Password} or
C{Secret} shows as C{System.Security.SecureString}, and so does a
L{SecureString}; a L{PSCredential} held in a property shows as
C{System.Management.Automation.PSCredential}.
"""

import dataclasses
import datetime
import enum
import fnmatch
import re
from collections.abc import Mapping

from exmta.opath import Evaluator, FilterError
from exmta.shell import dotnet
from exmta.shell.cmdlet import PSCredential, ScriptBlock, SecureString

_SECRET = re.compile(r"(password|secret)$", re.IGNORECASE)
_HIDDEN = "System.Security.SecureString"


class FormatOutput:
    """
    Text made by Format-List or Format-Table: printed as it is.
    """

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"FormatOutput({self.text!r})"


def isScalar(value):
    """
    Whether C{value} shows as one line of text rather than as properties.
    """
    return value is None or isinstance(
        value,
        (
            str,
            bytes,
            int,
            float,
            enum.Enum,
            datetime.date,
            datetime.time,
            datetime.timedelta,
            SecureString,
            ScriptBlock,
            FormatOutput,
        ),
    )


def properties(value):
    """
    @return: the C{(name, value)} pairs of C{value}'s properties, in order;
        none for a scalar.  Secrets are included as they are: hide them
        with L{shown}.
    """
    if isScalar(value):
        return []
    if isinstance(value, PSCredential):
        return [("UserName", value.UserName), ("Password", value.Password)]
    if isinstance(value, Mapping):
        return [(str(key), item) for key, item in value.items()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            (field.name, getattr(value, field.name))
            for field in dataclasses.fields(value)
            if not field.name.startswith("_")
        ]
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return list(value._asdict().items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return []
    names = []
    for klass in type(value).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if isinstance(slot, str) and slot not in names:
                names.append(slot)
    names.extend(name for name in getattr(value, "__dict__", {}) if name not in names)
    return [
        (name, getattr(value, name))
        for name in names
        if not name.startswith("_") and hasattr(value, name)
    ]


_MISSING = object()


def getProperty(value, name, default=None):
    """
    @return: C{value}'s property C{name}, matched case-insensitively, or
        C{default}.
    """
    if value is None or isScalar(value):
        return dotnet.getMember(value, name, default)
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        for key, item in value.items():
            if isinstance(key, str) and key.lower() == name.lower():
                return item
        return default
    found = getattr(value, name, _MISSING)
    if found is not _MISSING and not name.startswith("_"):
        return found
    for key, item in properties(value):
        if key.lower() == name.lower():
            return item
    return default


def hasProperty(value, name):
    return getProperty(value, name, _MISSING) is not _MISSING


def shown(name, value):
    """
    @return: the value to show for property C{name}: a secret hidden.
    """
    if value is not None and value != "" and _SECRET.search(name):
        return SecureString("")
    return value


def toText(value):
    """
    PowerShell's conversion of a value to a string, as in C{"$x"}: lists
    joined by spaces, C{$null} empty, booleans C{True}/C{False}.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return " ".join(toText(item) for item in value)
    if isinstance(value, (SecureString, PSCredential, ScriptBlock, FormatOutput)):
        return repr(value) if isinstance(value, SecureString) else str(value)
    return formatValue(value)


def _callMethod(value, name):
    try:
        return dotnet.callMethod(value, name)
    except dotnet.MemberError as error:
        raise FilterError(str(error)) from None


# The filter language (L{exmta.opath}) over the Shell's objects:
# Where-Object, ForEach-Object, Sort-Object and member access ($c.UserName).
evaluator = Evaluator(getProperty, toText, _callMethod)


def formatValue(value):
    """
    How a property's value shows in a list or a table.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, SecureString):
        return _HIDDEN
    if isinstance(value, (PSCredential, ScriptBlock, FormatOutput)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, datetime.timedelta):
        return _timespan(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ", "seconds")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return (
            "{"
            + "; ".join(
                f"{key}={formatValue(shown(str(key), item))}" for key, item in value.items()
            )
            + "}"
        )
    if isinstance(value, (list, tuple, set, frozenset)) and not hasattr(value, "_asdict"):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return "{" + ", ".join(formatValue(item) for item in items) + "}"
    for name in ("Identity", "Name"):
        if type(value).__str__ is object.__str__ and hasProperty(value, name):
            return formatValue(getProperty(value, name))
    if type(value).__str__ is object.__str__ and dataclasses.is_dataclass(value):
        return type(value).__name__
    return str(value)


def _timespan(value):
    """
    A TimeSpan as PowerShell shows it: C{[-][d.]hh:mm:ss[.fffffff]}.
    """
    sign = "-" if value < datetime.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{seconds:02}"
    if value.days:
        text = f"{value.days}.{text}"
    if value.microseconds:
        text += f".{value.microseconds:06}0"
    return sign + text


def selectProperties(value, patterns=None):
    """
    @param patterns: property names, with wildcards (C{*}, C{?}), matched
        case-insensitively; C{None} for all.
    @return: the C{(name, value)} pairs to show, secrets hidden.
    """
    pairs = properties(value)
    if patterns:
        chosen = []
        for pattern in patterns:
            pattern = str(pattern)
            if any(c in pattern for c in "*?["):
                chosen.extend(
                    pair
                    for pair in pairs
                    if fnmatch.fnmatchcase(pair[0].lower(), pattern.lower()) and pair not in chosen
                )
            else:
                match = [pair for pair in pairs if pair[0].lower() == pattern.lower()]
                chosen.extend(match or [(pattern, None)])
        pairs = chosen
    return [(name, shown(name, item)) for name, item in pairs]


def formatList(objects, patterns=None):
    """
    Format-List: one block of C{Name : Value} lines per object, the colons
    aligned, a blank line between blocks.
    """
    blocks = []
    for value in objects:
        if isScalar(value):
            if value is not None:
                blocks.append(formatValue(value))
            continue
        pairs = selectProperties(value, patterns)
        if not pairs:
            blocks.append(formatValue(value))
            continue
        width = max(len(name) for name, _ in pairs)
        lines = []
        for name, item in pairs:
            text = formatValue(item).splitlines() or [""]
            lines.append(f"{name.ljust(width)} : {text[0]}".rstrip())
            lines.extend(" " * (width + 3) + more for more in text[1:])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def formatTable(objects, patterns=None, width=None):
    """
    Format-Table: columns named by the first object's properties (or
    C{patterns}, or its type's C{DefaultDisplayPropertySet}), a dashed
    line under the headers, numbers right-aligned.

    @param width: the display's width: columns that do not fit are left
        out, with a warning, as PowerShell does.  C{None}: no limit.
    """
    objects = [value for value in objects if value is not None]
    scalars = [value for value in objects if isScalar(value)]
    rows = [value for value in objects if not isScalar(value)]
    parts = [formatValue(value) for value in scalars]
    if rows:
        patterns = patterns or getattr(type(rows[0]), "DefaultDisplayPropertySet", None)
        headers = [name for name, _ in selectProperties(rows[0], patterns)]
        cells = []
        for value in rows:
            pairs = dict((name.lower(), item) for name, item in selectProperties(value, headers))
            cells.append([pairs.get(name.lower()) for name in headers])
        texts = [[" ".join(formatValue(item).splitlines()) for item in row] for row in cells]
        widths = [
            max([len(header)] + [len(row[i]) for row in texts]) for i, header in enumerate(headers)
        ]
        dropped = 0
        if width:
            while (
                len(headers) - dropped > 1
                and sum(widths[: len(headers) - dropped]) + len(headers) - dropped - 1 > width
            ):
                dropped += 1
            if dropped:
                keep = len(headers) - dropped
                headers, widths = headers[:keep], widths[:keep]
                cells = [row[:keep] for row in cells]
                texts = [row[:keep] for row in texts]
        numeric = [
            any(row[i] is not None for row in cells)
            and all(
                isinstance(row[i], (int, float)) and not isinstance(row[i], bool)
                for row in cells
                if row[i] is not None
            )
            for i in range(len(headers))
        ]

        def line(items):
            return " ".join(
                item.rjust(width) if right else item.ljust(width)
                for item, width, right in zip(items, widths, numeric)
            ).rstrip()

        table = [
            line(headers),
            line(["-" * len(header) for header in headers]),
            *(line(row) for row in texts),
        ]
        if dropped:
            table.append(
                f"WARNING: {dropped} columns do not fit into the display and were removed."
            )
        parts.append("\n".join(table))
    return "\n".join(parts)


def formatDefault(objects, width=None):
    """
    The output of a pipeline nobody formatted: text as it is, runs of
    objects of one type as a table or a list.

    @param width: the display's width, for tables (L{formatTable}).
    """
    parts = []
    run = []

    def flush():
        if not run:
            return
        first = run[0]
        if getattr(type(first), "DefaultDisplayPropertySet", None) or len(properties(first)) <= 4:
            parts.append((formatTable(run, width=width), True))
        else:
            parts.append((formatList(run), True))
        run.clear()

    for value in objects:
        if isScalar(value):
            flush()
            if value is not None:
                parts.append((formatValue(value), isinstance(value, FormatOutput)))
        else:
            if run and type(run[0]) is not type(value):
                flush()
            run.append(value)
    flush()
    text = ""
    for index, (part, block) in enumerate(parts):
        if index:
            text += "\n\n" if block or parts[index - 1][1] else "\n"
        text += part
    return text
