"""
PowerShell's utility cmdlets that administrators' scripts wrap around
Exchange's: dates (Get-Date, New-TimeSpan), statistics (Measure-Object,
Group-Object), CSV (Export-Csv, ConvertTo-Csv, Import-Csv,
ConvertFrom-Csv), files of text (Out-File) and the error, warning and
verbose streams (Write-Error, Write-Warning, Write-Verbose).

Each takes the parameters administrators use, with PowerShell's defaults
and its output: C{Export-Csv} writes a C{#TYPE} line unless
C{-NoTypeInformation}, quotes every field, and writes a list as its type
name (C{System.String[]}) as PowerShell does, so the well-known remedy
works here too::

    Get-MessageTrackingLog -Start (Get-Date).AddHours(-1) |
        Select-Object Timestamp, EventId, Sender, @{n="Recipients"; e={$_.Recipients -join ";"}} |
        Export-Csv track.csv -NoTypeInformation
"""

import csv
import datetime
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass

from exmta.opath import truthy
from exmta.shell import dotnet
from exmta.shell.builtins import propertyValue
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet
from exmta.shell.format import (
    formatDefault,
    formatValue,
    isScalar,
    properties,
    shown,
    toText,
)


def _objects(value):
    if value is None:
        return ()
    if dotnet.isList(value):
        return value
    return (value,)


# Dates.


@cmdlet(
    "Get-Date",
    Parameter("Date", position=0, pipeline=True),
    Parameter("Format"),
    Parameter("Year"),
    Parameter("Month"),
    Parameter("Day"),
    Parameter("Hour"),
    Parameter("Minute"),
    Parameter("Second"),
)
def getDate(context, Date=None, Format=None, **parts):
    """
    The local date and time now (or -Date's), with -Year ... -Second
    replaced; with -Format, as text in a .NET format (C{Get-Date -Format
    "yyyy-MM-dd HH:mm"}).  C{(Get-Date).AddHours(-1)} is an hour ago.
    """
    try:
        value = datetime.datetime.now() if Date is None else dotnet.toDate(Date)
    except ValueError as error:
        raise CmdletError(
            f"Cannot bind parameter 'Date'. Cannot convert value \"{toText(Date)}\" to type "
            f'"System.DateTime". Error: "{error}"'
        ) from None
    replaced = {}
    for name, given in parts.items():
        number = dotnet.toNumber(given)
        if number is None:
            raise CmdletError(f"Cannot bind parameter '{name}': \"{toText(given)}\" is not a number.")
        replaced[name.lower()] = int(number)
    try:
        value = value.replace(**replaced)
    except ValueError as error:
        raise CmdletError(f"Cannot make a date of {replaced}: {error}.") from None
    if Format is not None:
        return dotnet.formatDate(value, toText(Format))
    return value


@cmdlet(
    "New-TimeSpan",
    Parameter("Start", position=0),
    Parameter("End", position=1),
    Parameter("Days"),
    Parameter("Hours"),
    Parameter("Minutes"),
    Parameter("Seconds"),
)
def newTimeSpan(context, Start=None, End=None, **parts):
    """
    A time span: from -Start to -End (now when not given), or of -Days,
    -Hours, -Minutes and -Seconds.
    """
    if Start is not None or End is not None:
        now = datetime.datetime.now()
        start = now if Start is None else dotnet.toDate(Start)
        end = now if End is None else dotnet.toDate(End)
        return end - start
    amounts = {}
    for name, given in parts.items():
        number = dotnet.toNumber(given)
        if number is None:
            raise CmdletError(f"Cannot bind parameter '{name}': \"{toText(given)}\" is not a number.")
        amounts[name.lower()] = number
    return datetime.timedelta(**amounts)


# Statistics.


@dataclass
class GenericMeasureInfo:
    Count: int
    Average: object
    Sum: object
    Maximum: object
    Minimum: object
    Property: str | None


@cmdlet(
    "Measure-Object",
    Parameter("Property", kind="list", position=0),
    Parameter("Sum", kind="switch"),
    Parameter("Average", kind="switch"),
    Parameter("Maximum", kind="switch"),
    Parameter("Minimum", kind="switch"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def measureObject(context, Property=None, Sum=False, Average=False, Maximum=False,
                  Minimum=False, InputObject=None):
    """
    Count the objects piped in (C{(Get-Queue | Measure-Object).Count}), and
    with -Sum, -Average, -Maximum, -Minimum, the statistics of a property
    (C{Get-Queue | Measure-Object MessageCount -Sum}).
    """
    objects = list(_objects(InputObject))
    for name in Property or (None,):
        values = []
        for value in objects:
            found = value if name is None else propertyValue(context, value, name)
            if found is None:
                continue
            if Sum or Average or Maximum or Minimum:
                number = dotnet.toNumber(found)
                if number is None:
                    if not isinstance(found, (str, datetime.datetime, datetime.timedelta)) or Sum or Average:
                        raise CmdletError(
                            f"Input object \"{toText(found)}\" is not numeric."
                        )
                    number = found
                found = number
            values.append(found)
        count = len(values) if name is not None else len(objects)
        yield GenericMeasureInfo(
            Count=count,
            Average=sum(values) / len(values) if Average and values else None,
            Sum=sum(values) if Sum else None,
            Maximum=max(values) if Maximum and values else None,
            Minimum=min(values) if Minimum and values else None,
            Property=None if name is None else toText(name),
        )


@dataclass
class GroupInfo:
    DefaultDisplayPropertySet = ("Count", "Name", "Group")

    Count: int
    Name: str
    Group: tuple
    Values: tuple


@cmdlet(
    "Group-Object",
    Parameter("Property", kind="list", position=0),
    Parameter("NoElement", kind="switch"),
    Parameter("CaseSensitive", kind="switch"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def groupObject(context, Property=None, NoElement=False, CaseSensitive=False, InputObject=None):
    """
    Group the objects by the values of their properties
    (C{Get-MessageTrackingLog | Group-Object EventId}), in the order each
    value first appears; values compare as text, case-insensitively.
    """
    groups = {}
    for value in _objects(InputObject):
        keys = tuple(
            value if name is None else propertyValue(context, value, name)
            for name in (Property or (None,))
        )
        text = ", ".join(toText(key) for key in keys)
        groups.setdefault(text if CaseSensitive else text.lower(), (text, keys, []))[2].append(value)
    for text, keys, members in groups.values():
        yield GroupInfo(len(members), text, () if NoElement else tuple(members), keys)


# CSV.


def _csvText(value):
    """
    A property's value in CSV, as .NET's ToString writes it.
    """
    if value is None:
        return ""
    if dotnet.isList(value):
        kinds = {type(item) for item in value}
        return "System.String[]" if kinds == {str} else "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    if isinstance(value, datetime.datetime):
        return dotnet.formatDate(value, None)
    return formatValue(value)


def _typeLine(value):
    if isinstance(value, Mapping):
        return "#TYPE System.Management.Automation.PSCustomObject"
    if isScalar(value):
        return f"#TYPE {dotnet.typeName(value)}"
    return f"#TYPE exmta.{type(value).__name__}"


def _rows(objects, delimiter, typeInformation, header=True):
    """
    @return: the lines of CSV for C{objects}: the properties of the first
        are the columns.
    """
    objects = [value for value in objects if value is not None]
    if not objects:
        return []
    first = objects[0]
    columns = [name for name, _ in properties(first)] if not isScalar(first) else []
    if isScalar(first):
        columns = ["Length"] if isinstance(first, str) else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\n")
    lines = [_typeLine(first)] if typeInformation else []
    if header:
        writer.writerow(columns)
    for value in objects:
        writer.writerow([
            _csvText(shown(name, propertyValue(None, value, name))) for name in columns
        ])
    return lines + buffer.getvalue().splitlines()


def _delimiter(Delimiter):
    text = "," if Delimiter is None else toText(Delimiter)
    if len(text) != 1:
        raise CmdletError(f"Cannot bind parameter 'Delimiter': \"{text}\" is not one character.")
    return text


@cmdlet(
    "ConvertTo-Csv",
    Parameter("InputObject", pipeline=True, position=0),
    Parameter("NoTypeInformation", kind="switch"),
    Parameter("Delimiter"),
    Parameter("UseCulture", kind="switch"),
    collectInput=True,
)
def convertToCsv(context, InputObject=None, NoTypeInformation=False, Delimiter=None, UseCulture=False):
    """
    The objects piped in as lines of CSV, the properties of the first as
    the columns; a C{#TYPE} line first unless -NoTypeInformation.
    """
    return _rows(_objects(InputObject), _delimiter(Delimiter), not NoTypeInformation)


@cmdlet(
    "Export-Csv",
    Parameter("Path", position=0, aliases=("LiteralPath", "PSPath")),
    Parameter("NoTypeInformation", kind="switch"),
    Parameter("Delimiter"),
    Parameter("Append", kind="switch"),
    Parameter("Force", kind="switch"),
    Parameter("NoClobber", kind="switch"),
    Parameter("Encoding"),
    Parameter("UseCulture", kind="switch"),
    Parameter("InputObject", pipeline=True),
    supportsWhatIf=True,
    collectInput=True,
)
def exportCsv(context, Path=None, NoTypeInformation=False, Delimiter=None, Append=False,
              Force=False, NoClobber=False, Encoding=None, UseCulture=False, InputObject=None):
    """
    Write the objects piped in to a CSV file (ConvertTo-Csv's lines), in
    UTF-8; -Append adds rows under the file's header, -NoClobber refuses
    to replace a file.
    """
    if Path is None:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: Path."
        )
    path = os.path.expanduser(toText(Path))
    if NoClobber and not Append and os.path.exists(path):
        raise CmdletError(f"The file '{path}' already exists.")
    appending = Append and os.path.exists(path) and os.path.getsize(path) > 0
    lines = _rows(_objects(InputObject), _delimiter(Delimiter),
                  not NoTypeInformation and not appending, header=not appending)
    if not context.shouldProcess(path, "Export-Csv"):
        return
    with open(path, "a" if appending else "w", encoding="utf-8", newline="") as handle:
        handle.write("".join(line + "\n" for line in lines))


def _fromCsv(lines, delimiter, header):
    rows = [row for row in csv.reader(lines, delimiter=delimiter)]
    while rows and rows[0] and rows[0][0].startswith("#TYPE"):
        rows.pop(0)
    if not rows:
        return []
    names = list(header) if header else rows.pop(0)
    return [
        {name: (row[index] if index < len(row) else None) for index, name in enumerate(names)}
        for row in rows
        if row
    ]


@cmdlet(
    "Import-Csv",
    Parameter("Path", position=0, aliases=("LiteralPath", "PSPath")),
    Parameter("Delimiter"),
    Parameter("Header", kind="list"),
    Parameter("Encoding"),
)
def importCsv(context, Path=None, Delimiter=None, Header=None, Encoding=None):
    """
    Read a CSV file: one object per row, its properties named by the
    header line (or -Header); every value is text.
    """
    if Path is None:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: Path."
        )
    with open(os.path.expanduser(toText(Path)), encoding="utf-8-sig", newline="") as handle:
        return _fromCsv(handle.read().splitlines(), _delimiter(Delimiter), Header)


@cmdlet(
    "ConvertFrom-Csv",
    Parameter("InputObject", pipeline=True, position=0),
    Parameter("Delimiter"),
    Parameter("Header", kind="list"),
    collectInput=True,
)
def convertFromCsv(context, InputObject=None, Delimiter=None, Header=None):
    """
    Lines of CSV (ConvertTo-Csv's) back into objects.
    """
    lines = []
    for item in _objects(InputObject):
        lines.extend(toText(item).splitlines())
    return _fromCsv(lines, _delimiter(Delimiter), Header)


# Text, errors, warnings.


@cmdlet(
    "Out-File",
    Parameter("FilePath", position=0, aliases=("Path", "LiteralPath")),
    Parameter("Append", kind="switch"),
    Parameter("Encoding"),
    Parameter("Force", kind="switch"),
    Parameter("NoClobber", kind="switch"),
    Parameter("Width"),
    Parameter("InputObject", pipeline=True),
    supportsWhatIf=True,
    collectInput=True,
)
def outFile(context, FilePath=None, Append=False, Encoding=None, Force=False, NoClobber=False,
            Width=None, InputObject=None):
    """
    Write the objects piped in to a file as the Shell shows them.
    """
    if FilePath is None:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: FilePath."
        )
    path = os.path.expanduser(toText(FilePath))
    if NoClobber and not Append and os.path.exists(path):
        raise CmdletError(f"The file '{path}' already exists.")
    width = None if Width is None else int(dotnet.toNumber(Width) or 0) or None
    text = formatDefault(list(_objects(InputObject)), width=width)
    if not context.shouldProcess(path, "Output to File"):
        return
    with open(path, "a" if Append else "w", encoding="utf-8") as handle:
        handle.write(text + "\n" if text else "")


@cmdlet("Write-Error", Parameter("Message", position=0, pipeline=True, aliases=("Msg",)))
def writeError(context, Message=None):
    """
    Report an error that does not stop the script (unless -ErrorAction Stop).
    """
    context.writeError(toText(Message))


@cmdlet("Write-Warning", Parameter("Message", position=0, pipeline=True, mandatory=True))
def writeWarning(context, Message):
    context.writeWarning(toText(Message))


@cmdlet("Write-Verbose", Parameter("Message", position=0, pipeline=True, mandatory=True))
def writeVerbose(context, Message):
    context.writeVerbose(toText(Message))


@cmdlet(
    "Test-Path",
    Parameter("Path", position=0, mandatory=True, aliases=("LiteralPath",)),
)
def testPath(context, Path):
    """
    Whether a file or folder exists (C{if (Test-Path track.csv) { ... }}).
    """
    return truthy(Path) and os.path.exists(os.path.expanduser(toText(Path)))
