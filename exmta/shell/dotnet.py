"""
The .NET members scripts reach for on the Shell's values, which are Python
values: C{(Get-Date).AddHours(-1)}, C{$name.ToUpper()}, C{$span.TotalMinutes},
C{$list.Count}, C{$h.ContainsKey("a")}, C{$x.ToString()}; the casts
C{[int]}, C{[string]}, C{[datetime]}...; the static members
C{[datetime]::Now} and C{[math]::Round(x, n)}; the C{-f} operator; and the
names of the types values stand for (C{[System.String]} in messages).

Member names are case-insensitive, as in PowerShell.  Dates are local
times without a zone, as Get-MessageTrackingLog's timestamps are.
"""

import datetime
import math
import re
from collections.abc import Mapping

from exmta.opath.reader import parseNumber
from exmta.shell.cmdlet import CmdletError, ScriptBlock

_MISSING = object()
# A size as Exchange shows one (ByteQuantifiedSize): "10 MB (10,485,760 bytes)".
_SIZE = re.compile(r"[\d.,]+ ?[KMGTP]?B \(([\d,]+) bytes\)", re.IGNORECASE)
_TYPE_NAMES = (
    (bool, "System.Boolean"),
    (int, "System.Int32"),
    (float, "System.Double"),
    (str, "System.String"),
    (datetime.datetime, "System.DateTime"),
    (datetime.timedelta, "System.TimeSpan"),
    (ScriptBlock, "System.Management.Automation.ScriptBlock"),
    (Mapping, "System.Collections.Hashtable"),
    ((list, tuple), "System.Object[]"),
)


class MemberError(Exception):
    """
    A member that does not exist, or a method that failed: the message is
    PowerShell's.
    """


def typeName(value):
    """
    @return: the .NET type name of the type C{value} stands for.
    """
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
        return "System.Int64"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def isList(value):
    return isinstance(value, (list, tuple)) and not hasattr(value, "_asdict")


# Properties.


def _dateProperties(value):
    return {
        "year": value.year, "month": value.month, "day": value.day, "hour": value.hour,
        "minute": value.minute, "second": value.second,
        "millisecond": value.microsecond // 1000,
        "dayofweek": value.strftime("%A"), "dayofyear": value.timetuple().tm_yday,
        "date": datetime.datetime(value.year, value.month, value.day),
        "timeofday": value - datetime.datetime(value.year, value.month, value.day),
        "ticks": int((value - datetime.datetime(1, 1, 1)).total_seconds() * 10**7),
    }


def _spanProperties(value):
    total = value.total_seconds()
    sign = -1 if total < 0 else 1
    whole = abs(value)
    return {
        "days": sign * whole.days, "hours": sign * (whole.seconds // 3600),
        "minutes": sign * (whole.seconds // 60 % 60), "seconds": sign * (whole.seconds % 60),
        "milliseconds": sign * (whole.microseconds // 1000),
        "totaldays": total / 86400, "totalhours": total / 3600, "totalminutes": total / 60,
        "totalseconds": total, "totalmilliseconds": total * 1000,
    }


def getMember(value, name, default=None):
    """
    @return: the property C{name} of a value that has no properties of its
        own in the Shell (text, a number, a date, a time span), or
        C{default}.
    """
    lower = name.lower()
    if isinstance(value, str):
        return len(value) if lower == "length" else default
    if isinstance(value, datetime.datetime):
        return _dateProperties(value).get(lower, default)
    if isinstance(value, datetime.timedelta):
        return _spanProperties(value).get(lower, default)
    return default


# Methods.


def _text(value):
    from exmta.shell.format import toText

    return toText(value)


def _number(value):
    number = toNumber(value)
    if number is None:
        raise MemberError(f'Cannot convert argument "{_text(value)}" to a number.')
    return number


def _stringMethods(value):
    return {
        "toupper": lambda: value.upper(),
        "toupperinvariant": lambda: value.upper(),
        "tolower": lambda: value.lower(),
        "tolowerinvariant": lambda: value.lower(),
        "trim": lambda *chars: value.strip("".join(map(_text, chars)) or None),
        "trimstart": lambda *chars: value.lstrip("".join(map(_text, chars)) or None),
        "trimend": lambda *chars: value.rstrip("".join(map(_text, chars)) or None),
        "split": lambda *seps: tuple(re.split("|".join(re.escape(_text(s)) for s in seps), value))
        if seps else tuple(value.split()),
        "replace": lambda old, new: value.replace(_text(old), _text(new)),
        "contains": lambda part: _text(part) in value,
        "startswith": lambda part: value.startswith(_text(part)),
        "endswith": lambda part: value.endswith(_text(part)),
        "indexof": lambda part: value.find(_text(part)),
        "substring": lambda start, length=None: value[int(start):]
        if length is None else value[int(start) : int(start) + int(length)],
        "padleft": lambda width, char=" ": value.rjust(int(width), _text(char)),
        "padright": lambda width, char=" ": value.ljust(int(width), _text(char)),
    }


def _dateMethods(value):
    def add(**units):
        return lambda amount: value + datetime.timedelta(**{k: _number(amount) for k in units})

    return {
        "addseconds": add(seconds=1),
        "addminutes": add(minutes=1),
        "addhours": add(hours=1),
        "adddays": add(days=1),
        "addmilliseconds": add(milliseconds=1),
        "addmonths": lambda n: _addMonths(value, int(_number(n))),
        "addyears": lambda n: _addMonths(value, 12 * int(_number(n))),
        "add": lambda span: value + span,
        "subtract": lambda other: value - other,
        "tostring": lambda fmt=None: formatDate(value, None if fmt is None else _text(fmt)),
        "touniversaltime": lambda: value.astimezone(datetime.timezone.utc).replace(tzinfo=None),
        "tolocaltime": lambda: value,
        "toshortdatestring": lambda: formatDate(value, "d"),
        "tolongdatestring": lambda: formatDate(value, "D"),
        "toshorttimestring": lambda: formatDate(value, "t"),
    }


def _addMonths(value, months):
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
            31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return value.replace(year=year, month=month, day=min(value.day, days))


def _mappingMethods(value):
    def find(key):
        for existing in value:
            if isinstance(existing, str) and isinstance(key, str) and existing.lower() == key.lower():
                return existing
        return key if key in value else _MISSING

    def add(key, item):
        if find(key) is not _MISSING:
            raise MemberError(f"Item has already been added. Key in dictionary: '{_text(key)}'")
        value[key] = item

    return {
        "containskey": lambda key: find(key) is not _MISSING,
        "containsvalue": lambda item: item in value.values(),
        "add": add,
        "remove": lambda key: value.pop(find(key), None),
        "clear": lambda: value.clear(),
        "keys": lambda: tuple(value.keys()),
    }


def _listMethods(value):
    return {
        "contains": lambda item: item in value,
        "indexof": lambda item: value.index(item) if item in value else -1,
    }


def callMethod(value, name, arguments=()):
    """
    C{value.Name(arguments)}.

    @raise MemberError: when the value has no such method, with
        PowerShell's message.
    """
    lower = name.lower()
    if value is None:
        raise MemberError("You cannot call a method on a null-valued expression.")
    table = {}
    if isinstance(value, str):
        table = _stringMethods(value)
    elif isinstance(value, datetime.datetime):
        table = _dateMethods(value)
    elif isinstance(value, Mapping):
        table = _mappingMethods(value)
    elif isList(value):
        table = _listMethods(value)
    method = table.get(lower)
    if method is None:
        for attribute in dir(value):
            if attribute.lower() == lower and not attribute.startswith("_"):
                found = getattr(value, attribute)
                if callable(found):
                    method = found
                break
    if method is None and lower == "tostring" and not arguments:
        method = lambda: _dotnetText(value)  # noqa: E731
    if method is None and lower == "gettype" and not arguments:
        method = lambda: typeName(value)  # noqa: E731
    if method is None and lower == "equals" and len(arguments) == 1:
        method = lambda other: value == other  # noqa: E731
    if method is None:
        raise MemberError(
            f"Method invocation failed because [{typeName(value)}] does not contain a method "
            f"named '{name}'."
        )
    try:
        return method(*arguments)
    except TypeError:
        raise MemberError(
            f'Cannot find an overload for "{name}" and the argument count: "{len(arguments)}".'
        ) from None
    except (ValueError, OverflowError, ZeroDivisionError) as error:
        raise MemberError(f'Exception calling "{name}" with "{len(arguments)}" argument(s): "{error}"') from None


def _dotnetText(value):
    if isinstance(value, datetime.datetime):
        return formatDate(value, None)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isList(value):
        return "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    return _text(value)


# Dates as .NET writes them (en-US).

_DATE_PATTERNS = {
    None: "M/d/yyyy h:mm:ss tt",
    "d": "M/d/yyyy",
    "D": "dddd, MMMM d, yyyy",
    "t": "h:mm tt",
    "T": "h:mm:ss tt",
    "g": "M/d/yyyy h:mm tt",
    "G": "M/d/yyyy h:mm:ss tt",
    "f": "dddd, MMMM d, yyyy h:mm tt",
    "F": "dddd, MMMM d, yyyy h:mm:ss tt",
    "s": "yyyy-MM-ddTHH:mm:ss",
    "u": "yyyy-MM-dd HH:mm:ssZ",
    "o": "yyyy-MM-ddTHH:mm:ss.fffffff",
}
_DATE_TOKENS = re.compile(
    r"dddd|ddd|dd|d|MMMM|MMM|MM|M|yyyy|yy|HH|H|hh|h|mm|m|ss|s|fffffff|ffffff|fff|ff|f|tt|t|zzz|'[^']*'|\"[^\"]*\"|\\.|."
)


def formatDate(value, pattern):
    """
    A date in a .NET format (C{"yyyy-MM-dd HH:mm"}, C{"d"}, C{"s"}), as the
    en-US culture writes it; C{None} for the default (C{ToString()}).
    """
    pattern = _DATE_PATTERNS.get(pattern, pattern)
    out = []
    hour12 = value.hour % 12 or 12
    for token in _DATE_TOKENS.findall(pattern):
        out.append({
            "dddd": value.strftime("%A"), "ddd": value.strftime("%a"),
            "dd": f"{value.day:02}", "d": str(value.day),
            "MMMM": value.strftime("%B"), "MMM": value.strftime("%b"),
            "MM": f"{value.month:02}", "M": str(value.month),
            "yyyy": f"{value.year:04}", "yy": f"{value.year % 100:02}",
            "HH": f"{value.hour:02}", "H": str(value.hour),
            "hh": f"{hour12:02}", "h": str(hour12),
            "mm": f"{value.minute:02}", "m": str(value.minute),
            "ss": f"{value.second:02}", "s": str(value.second),
            "fffffff": f"{value.microsecond:06}0", "ffffff": f"{value.microsecond:06}",
            "fff": f"{value.microsecond // 1000:03}", "ff": f"{value.microsecond // 10000:02}",
            "f": str(value.microsecond // 100000),
            "tt": "AM" if value.hour < 12 else "PM", "t": "A" if value.hour < 12 else "P",
            "zzz": value.astimezone().strftime("%z")[:3] + ":" + value.astimezone().strftime("%z")[3:],
        }.get(token, token[1:-1] if token[:1] in "'\"" and len(token) > 1 else token.lstrip("\\")))
    return "".join(out)


# -f, PowerShell's format operator.

_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^}]*))?\}")


def formatComposite(pattern, arguments):
    """
    C{"{0} has {1:N0} messages" -f $a, $b}: .NET's composite formatting.
    """

    def item(match):
        if match.group() in ("{{", "}}"):
            return match.group()[0]
        index = int(match.group(1))
        if index >= len(arguments):
            raise MemberError(
                "Error formatting a string: Index (zero based) must be greater than or equal to "
                "zero and less than the size of the argument list."
            )
        text = _formatOne(arguments[index], match.group(3))
        width = int(match.group(2) or 0)
        return text.rjust(width) if width > 0 else text.ljust(-width)

    return _ITEM.sub(item, pattern)


def _formatOne(value, spec):
    if not spec:
        return _dotnetText(value)
    if isinstance(value, datetime.datetime):
        return formatDate(value, spec)
    number = toNumber(value) if not isinstance(value, str) else None
    if number is not None:
        kind, digits = spec[0].upper(), spec[1:]
        if kind == "N":
            return f"{number:,.{int(digits or 2)}f}"
        if kind == "F":
            return f"{number:.{int(digits or 2)}f}"
        if kind == "D":
            return f"{int(number):0{int(digits or 1)}d}"
        if kind == "P":
            return f"{number * 100:,.{int(digits or 2)}f} %"
        if kind == "X":
            return f"{int(number):0{int(digits or 1)}{'X' if spec[0] == 'X' else 'x'}}"
    return _dotnetText(value)


# Numbers, casts and static members.


def toNumber(value):
    """
    @return: C{value} as a number, as PowerShell converts it, or C{None}.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        size = _SIZE.fullmatch(text)
        if size is not None:
            return int(size.group(1).replace(",", ""))
        return parseNumber(text)
    return None


def toDate(value):
    from exmta.opath import parseDateTime

    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromtimestamp(parseDateTime(value))


def _toInt(value):
    number = toNumber(value)
    if number is None:
        raise ValueError("Input string was not in a correct format.")
    # .NET rounds half to even, as Python does.
    return int(round(number))


def _toBool(value):
    from exmta.opath import truthy

    return truthy(value)


_CASTS = {
    "int": ("System.Int32", _toInt),
    "int32": ("System.Int32", _toInt),
    "long": ("System.Int64", _toInt),
    "int64": ("System.Int64", _toInt),
    "double": ("System.Double", lambda v: float(_number(v))),
    "decimal": ("System.Decimal", lambda v: float(_number(v))),
    "string": ("System.String", lambda v: _text(v)),
    "bool": ("System.Boolean", _toBool),
    "boolean": ("System.Boolean", _toBool),
    "datetime": ("System.DateTime", toDate),
    "array": ("System.Object[]", lambda v: tuple(v) if isList(v) else (() if v is None else (v,))),
    "object[]": ("System.Object[]", lambda v: tuple(v) if isList(v) else (() if v is None else (v,))),
    "string[]": ("System.String[]", lambda v: tuple(_text(i) for i in (v if isList(v) else (v,)))),
    "hashtable": ("System.Collections.Hashtable", dict),
    "ordered": ("System.Collections.Specialized.OrderedDictionary", dict),
    "pscustomobject": ("System.Management.Automation.PSCustomObject", dict),
    "timespan": ("System.TimeSpan", lambda v: v if isinstance(v, datetime.timedelta) else _span(v)),
}


def _span(value):
    from exmta.config.values import parseTimespan

    return parseTimespan(_text(value))


def _castKey(name):
    lower = name.lower()
    for prefix in ("system.", "system.management.automation."):
        if lower.startswith(prefix) and lower[len(prefix):] in _CASTS:
            return lower[len(prefix):]
    return lower


def knownType(name):
    return _castKey(name) in _CASTS


def cast(name, value):
    """
    C{[name]value}.

    @raise MemberError: for a type the Shell does not know or a value that
        does not convert, in PowerShell's words.
    """
    key = _castKey(name)
    if key not in _CASTS:
        raise MemberError(f"Unable to find type [{name}].")
    fullName, convert = _CASTS[key]
    if key in ("hashtable", "ordered", "pscustomobject") and not isinstance(value, Mapping):
        raise MemberError(f'Cannot convert value "{_text(value)}" to type "{fullName}".')
    try:
        return convert(value)
    except (ValueError, TypeError, OverflowError, MemberError, CmdletError) as error:
        reason = str(error) or "Input string was not in a correct format."
        raise MemberError(
            f'Cannot convert value "{_text(value)}" to type "{fullName}". Error: "{reason}"'
        ) from None


def isInstance(value, name):
    """
    C{value -is [name]}.
    """
    key = _castKey(name)
    if key not in _CASTS:
        raise MemberError(f"Unable to find type [{name}].")
    fullName = _CASTS[key][0]
    if fullName in ("System.Int32", "System.Int64"):
        return isinstance(value, int) and not isinstance(value, bool)
    if key in ("pscustomobject", "hashtable", "ordered"):
        return isinstance(value, Mapping)
    if key in ("array", "object[]", "string[]"):
        return isList(value)
    return typeName(value) == fullName


def staticMember(name, member, arguments):
    """
    C{[datetime]::Now}, C{[datetime]::Parse("...")}, C{[math]::Round(x, n)},
    C{[int]::MaxValue}, C{[string]::IsNullOrEmpty($x)}.
    """
    key, lower = _castKey(name), member.lower()
    if key == "math":
        key = "math"
    table = {
        ("datetime", "now"): lambda: datetime.datetime.now(),
        ("datetime", "today"): lambda: datetime.datetime.combine(datetime.date.today(), datetime.time()),
        ("datetime", "utcnow"): lambda: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
        ("datetime", "parse"): toDate,
        ("int", "maxvalue"): lambda: 2**31 - 1,
        ("int", "minvalue"): lambda: -(2**31),
        ("string", "isnullorempty"): lambda v: v is None or _text(v) == "",
        ("string", "isnullorwhitespace"): lambda v: v is None or not _text(v).strip(),
        ("string", "join"): lambda sep, items: _text(sep).join(_text(i) for i in (items if isList(items) else (items,))),
        ("string", "empty"): lambda: "",
        ("math", "round"): lambda x, n=0: round(_number(x), int(n)) if n else int(round(_number(x))),
        ("math", "floor"): lambda x: math.floor(_number(x)),
        ("math", "ceiling"): lambda x: math.ceil(_number(x)),
        ("math", "abs"): lambda x: abs(_number(x)),
        ("math", "max"): lambda a, b: max(_number(a), _number(b)),
        ("math", "min"): lambda a, b: min(_number(a), _number(b)),
        ("math", "pow"): lambda a, b: float(_number(a) ** _number(b)),
        ("math", "sqrt"): lambda a: math.sqrt(_number(a)),
    }
    found = table.get((key, lower))
    if found is None:
        if key not in _CASTS and key != "math":
            raise MemberError(f"Unable to find type [{name}].")
        raise MemberError(f"The static member '{member}' of [{name}] is not known to the exmta Shell.")
    if arguments is None:
        if lower in ("now", "today", "utcnow", "maxvalue", "minvalue", "empty"):
            return found()
        raise MemberError(f"[{name}]::{member} is a method: call it with ().")
    try:
        return found(*arguments)
    except TypeError:
        raise MemberError(
            f'Cannot find an overload for "{member}" and the argument count: "{len(arguments)}".'
        ) from None
    except (ValueError, OverflowError) as error:
        raise MemberError(
            f'Exception calling "{member}" with "{len(arguments)}" argument(s): "{error}"'
        ) from None
