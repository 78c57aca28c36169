"""
The cmdlets every Shell has, whatever it manages: credentials and prompts,
formatting, filtering and discovering commands.  Each is minimal: the
parameters administrators use daily, as PowerShell spells them.
"""

import fnmatch
import functools
import inspect
import re
from dataclasses import dataclass

from exmta.shell.cmdlet import (
    CmdletError,
    Parameter,
    PSCredential,
    ScriptBlock,
    SecureString,
    cmdlet,
)
from exmta.opath import FilterError, FilterSyntaxError, parseFilter, truthy
from exmta.shell.format import (
    FormatOutput,
    evaluator,
    formatList,
    formatTable,
    getProperty,
    isScalar,
    properties,
    toText,
)
from exmta.shell.host import EndOfInput
from exmta.shell.runtime import ALIASES, notRecognized

ALIASES.update(
    {
        "fl": "Format-List",
        "ft": "Format-Table",
        "gcm": "Get-Command",
        "help": "Get-Help",
        "man": "Get-Help",
        "echo": "Write-Output",
        "write": "Write-Output",
        "select": "Select-Object",
        "where": "Where-Object",
        "?": "Where-Object",
        "foreach": "ForEach-Object",
        "%": "ForEach-Object",
        "sort": "Sort-Object",
    }
)

_OPERATORS = (
    "EQ",
    "NE",
    "GT",
    "GE",
    "LT",
    "LE",
    "Like",
    "NotLike",
    "Match",
    "NotMatch",
    "Contains",
    "NotContains",
    "In",
    "NotIn",
    "CEQ",
    "CNE",
    "CLike",
    "CNotLike",
    "CMatch",
    "CNotMatch",
)


@cmdlet(
    "Get-Credential",
    Parameter("UserName", position=0, aliases=("Credential",)),
    Parameter("Message", position=1),
    Parameter("Title"),
)
def getCredential(context, UserName=None, Message=None, Title=None):
    """
    Ask for a user name and a password; output them as a credential
    (C{$mycred = Get-Credential}).

    On a terminal it prompts, without echoing the password.  When standard
    input is not a terminal it reads two lines from it: the user name, then
    the password (only the password when -UserName is given).  The
    credential's password is never shown.
    """
    if isinstance(UserName, PSCredential):
        return UserName
    try:
        credential = context.host.promptForCredential(
            Title or "PowerShell credential request",
            Message or "Enter your credentials.",
            None if UserName is None else str(UserName),
        )
    except EndOfInput:
        raise CmdletError(
            "Cannot read the credential: standard input ended before the user name and the password."
        ) from None
    if not credential.UserName:
        raise CmdletError("Cannot process a credential without a user name.")
    return credential


@cmdlet(
    "Read-Host",
    Parameter("Prompt", position=0),
    Parameter("AsSecureString", kind="switch"),
    Parameter("MaskInput", kind="switch"),
)
def readHost(context, Prompt=None, AsSecureString=False, MaskInput=False):
    """
    Read a line: typed at a prompt on a terminal, else the next line of
    standard input.  -AsSecureString reads it without echo, as a
    SecureString (for New-Mailbox -Password).
    """
    prompt = f"{Prompt}: " if Prompt is not None else ""
    try:
        if AsSecureString or MaskInput:
            text = context.host.readSecret(prompt)
            return SecureString(text) if AsSecureString else text
        return context.host.readLine(prompt)
    except EndOfInput:
        raise CmdletError("Cannot read a line: standard input has ended.") from None


@cmdlet(
    "ConvertTo-SecureString",
    Parameter("String", position=0, pipeline=True, mandatory=True),
    Parameter("AsPlainText", kind="switch"),
    Parameter("Force", kind="switch"),
)
def convertToSecureString(context, String, AsPlainText=False, Force=False):
    """
    Make a SecureString of plain text: C{ConvertTo-SecureString 'P@ssw0rd'
    -AsPlainText -Force}.
    """
    if not AsPlainText:
        raise CmdletError(
            "The exmta Shell converts only plain text to a SecureString: use -AsPlainText -Force."
        )
    if isinstance(String, SecureString):
        return String
    return SecureString(String)


@cmdlet(
    "Format-List",
    Parameter("Property", kind="list", position=0),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def formatListCmdlet(context, Property=None, InputObject=None):
    """
    Show each object as C{Name : Value} lines: all its properties, or
    those -Property names (wildcards allowed).  Passwords never show.
    """
    text = formatList(_objects(InputObject), _patterns(Property))
    if text:
        yield FormatOutput(text)


@cmdlet(
    "Format-Table",
    Parameter("Property", kind="list", position=0),
    Parameter("AutoSize", kind="switch"),
    Parameter("Wrap", kind="switch"),
    Parameter("HideTableHeaders", kind="switch"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def formatTableCmdlet(
    context, Property=None, AutoSize=False, Wrap=False, HideTableHeaders=False, InputObject=None
):
    """
    Show the objects as a table: a column per property (all, or those
    -Property names).  Columns are as wide as their widest value; those
    that do not fit the terminal are left out, with a warning (-AutoSize
    and -Wrap are accepted for scripts that give them).
    """
    text = formatTable(
        _objects(InputObject), _patterns(Property), width=getattr(context.host, "width", None)
    )
    if text and HideTableHeaders:
        text = "\n".join(text.split("\n")[2:])
    if text:
        yield FormatOutput(text)


def _objects(InputObject):
    if InputObject is None:
        return ()
    if isinstance(InputObject, (list, tuple)) and not hasattr(InputObject, "_asdict"):
        return InputObject
    return (InputObject,)


def _patterns(Property):
    if Property is None:
        return None
    return [str(name) for name in Property]


@cmdlet(
    "Write-Output",
    Parameter("InputObject", position=0, pipeline=True, remaining=True),
    Parameter("NoEnumerate", kind="switch"),
)
def writeOutput(context, InputObject=None, NoEnumerate=False):
    """
    Output the objects given: C{Write-Output "text"}, C{Write-Output $mycred.UserName}.
    """
    if NoEnumerate:
        return InputObject
    return list(_objects(InputObject))


@cmdlet(
    "Write-Host",
    Parameter("Object", position=0, pipeline=True),
    Parameter("NoNewline", kind="switch"),
    Parameter("Separator"),
)
def writeHost(context, Object=None, NoNewline=False, Separator=" "):
    """
    Print text on the console, not in the output of the pipeline.
    """
    if isinstance(Object, (list, tuple)):
        text = str(Separator).join(toText(item) for item in Object)
    else:
        text = toText(Object)
    context.host.write(text)


@cmdlet("Out-Null", Parameter("InputObject", pipeline=True), collectInput=True)
def outNull(context, InputObject=None):
    """
    Discard the objects piped in.
    """


@dataclass(frozen=True)
class CommandInfo:
    """
    A command, as Get-Command shows it.
    """

    CommandType: str
    Name: str
    Source: str


@cmdlet(
    "Get-Command",
    Parameter("Name", kind="list", position=0),
    Parameter("Verb", kind="list"),
    Parameter("Noun", kind="list"),
    Parameter("Syntax", kind="switch"),
)
def getCommand(context, Name=None, Verb=None, Noun=None, Syntax=False):
    """
    List the Shell's cmdlets (C{Get-Command *Connector*}, C{Get-Command
    -Verb New}); -Syntax shows how to call them.
    """
    session = context.session
    cmdlets = sorted(session.cmdlets.values(), key=lambda c: c.name.lower())
    chosen = []
    for pattern in Name or ("*",):
        pattern = str(pattern)
        resolved = session.findCmdlet(pattern) if not _wild(pattern) else None
        found = (
            [resolved]
            if resolved
            else [c for c in cmdlets if fnmatch.fnmatchcase(c.name.lower(), pattern.lower())]
        )
        if not found and not _wild(pattern):
            raise CmdletError(notRecognized(pattern))
        chosen.extend(c for c in found if c not in chosen)
    for cmdlet_ in chosen:
        verb, _, noun = cmdlet_.name.partition("-")
        if Verb and not any(fnmatch.fnmatchcase(verb.lower(), str(v).lower()) for v in Verb):
            continue
        if Noun and not any(fnmatch.fnmatchcase(noun.lower(), str(n).lower()) for n in Noun):
            continue
        if Syntax:
            yield syntax(session, cmdlet_)
        else:
            yield CommandInfo("Cmdlet", cmdlet_.name, _source(cmdlet_))


def _wild(pattern):
    return any(c in pattern for c in "*?[")


def _source(cmdlet_):
    module = getattr(cmdlet_.function, "__module__", "") or ""
    return module.rsplit(".", 1)[-1] if module.startswith("exmta.") else module


def syntax(session, cmdlet_):
    """
    A cmdlet's syntax line, as Get-Help shows it::

        New-Thing [-Name] <Object> -Kind <Object[]> [-Force] [-WhatIf] [-Confirm] [<CommonParameters>]
    """
    parts = [cmdlet_.name]
    ordered = sorted(
        cmdlet_.parameters,
        key=lambda p: (
            p.position is None,
            p.position if p.position is not None else 0,
            not p.mandatory,
        ),
    )
    for parameter in ordered:
        kind = {"switch": "", "list": " <Object[]>"}.get(parameter.kind, " <Object>")
        name = (
            f"[-{parameter.name}]"
            if parameter.position is not None and kind
            else f"-{parameter.name}"
        )
        text = name + kind
        if not parameter.mandatory:
            text = f"[{text}]"
        parts.append(text)
    if cmdlet_.supportsWhatIf:
        parts.append("[-WhatIf]")
    parts.extend(["[-Confirm]", "[<CommonParameters>]"])
    return " ".join(parts)


@cmdlet(
    "Get-Help",
    Parameter("Name", position=0),
    Parameter("Full", kind="switch"),
    Parameter("Detailed", kind="switch"),
    Parameter("Examples", kind="switch"),
    Parameter("Parameter"),
)
def getHelp(context, Name=None, Full=False, Detailed=False, Examples=False, Parameter=None):
    """
    Show how to use a cmdlet: C{Get-Help New-SendConnector}.  Without a
    name, how to use the Shell.
    """
    session = context.session
    if Name is None:
        return FormatOutput(_SHELL_HELP)
    found = session.findCmdlet(str(Name))
    if found is None:
        raise CmdletError(
            f"Get-Help could not find {Name} in a help file in this session. "
            "Get-Command lists the cmdlets this Shell has."
        )
    lines = ["", "NAME", f"    {found.name}", ""]
    description = _docstring(found.function)
    if description:
        lines += ["SYNOPSIS", f"    {description[0]}", ""]
    lines += ["SYNTAX", f"    {syntax(session, found)}", ""]
    if len(description) > 1:
        lines += ["DESCRIPTION", *(f"    {line}".rstrip() for line in description[1:]), ""]
    if found.parameters and (Full or Detailed or Parameter is not None):
        lines.append("PARAMETERS")
        for parameter in found.parameters:
            if Parameter is not None and parameter.name.lower() != str(Parameter).lower():
                continue
            lines.append(f"    -{parameter.name}")
            facts = [
                ("Required?", "true" if parameter.mandatory else "false"),
                ("Position?", "named" if parameter.position is None else str(parameter.position)),
                ("Accept pipeline input?", "true" if parameter.pipeline else "false"),
                ("Kind", parameter.kind),
            ]
            if parameter.aliases:
                facts.append(("Aliases", ", ".join(parameter.aliases)))
            lines += [f"        {name:<24}{value}" for name, value in facts] + [""]
    if not (Full or Detailed or Parameter is not None):
        lines += ["REMARKS", f"    For the parameters, type: Get-Help {found.name} -Full", ""]
    return FormatOutput("\n".join(lines).rstrip("\n").lstrip("\n"))


def _docstring(function):
    """
    A docstring's lines, dedented, without its epytext fields (C{@param}).
    """
    text = inspect.getdoc(function) or ""
    lines = []
    for line in text.splitlines():
        if line.startswith("@"):
            break
        lines.append(re.sub(r"\b[CLI]\{([^{}]*)\}", r"\1", line))
    while lines and not lines[-1].strip():
        lines.pop()
    paragraphs = "\n".join(lines).split("\n\n")
    synopsis = " ".join(paragraphs[0].split())
    return [synopsis, *"\n\n".join(paragraphs[1:]).splitlines()] if synopsis else []


_SHELL_HELP = """\
The exmta Shell runs the Exchange Management Shell's commands against org.ini.

  Get-Command                 lists the cmdlets; Get-Command *Connector* some of them
  Get-Help NAME               shows how to use one
  $mycred = Get-Credential    asks for a user name and a password
  Get-SendConnector | Format-List
  Get-ReceiveConnector "X" | Add-ADPermission -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ...
  Remove-SendConnector X -WhatIf

  Get-ReceiveConnector | ForEach-Object { Set-ReceiveConnector $_.Identity -MaxMessageSize 25MB }
  foreach ($s in Get-TransportServer) { Get-Queue -Server $s.Name }
  Get-MessageTrackingLog -Start (Get-Date).AddHours(-1) | Export-Csv track.csv -NoTypeInformation

Parameter names may be shortened while they stay unambiguous (-Addr for
-AddressSpaces).  -Confirm is accepted and ignored: the Shell never asks.
Scripts may use if/elseif/else, foreach, while, function, try/catch/finally
and PowerShell's operators.  exit leaves the Shell."""


@cmdlet(
    "Select-Object",
    Parameter("Property", kind="list", position=0),
    Parameter("ExpandProperty"),
    Parameter("First"),
    Parameter("Last"),
    Parameter("Skip"),
    Parameter("Unique", kind="switch"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def selectObject(
    context,
    Property=None,
    ExpandProperty=None,
    First=None,
    Last=None,
    Skip=None,
    Unique=False,
    InputObject=None,
):
    """
    Choose objects (-First, -Last, -Skip, -Unique) and their properties
    (-Property, with wildcards), or output one property's value
    (-ExpandProperty).
    """
    objects = list(_objects(InputObject))
    if Skip is not None:
        objects = objects[_count(Skip, "Skip") :]
    if First is not None or Last is not None:
        head = objects[: _count(First, "First")] if First is not None else []
        last = _count(Last, "Last") if Last is not None else 0
        tail = objects[len(head) :][-last:] if last else []
        objects = head + tail
    if Unique:
        unique = []
        for value in objects:
            if value not in unique:
                unique.append(value)
        objects = unique
    for value in objects:
        if ExpandProperty is not None:
            found = getProperty(value, str(ExpandProperty), _MISSING)
            if found is _MISSING:
                context.writeError(f'Property "{ExpandProperty}" cannot be found.')
                continue
            yield from _objects(found)
        elif Property is not None:
            chosen = {}
            for pattern in Property:
                if isinstance(pattern, (dict, ScriptBlock)):
                    name = _calculatedName(pattern)
                    chosen[name] = propertyValue(context, value, pattern)
                    continue
                pattern = str(pattern)
                if _wild(pattern):
                    for name, item in properties(value):
                        if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                            chosen.setdefault(name, item)
                else:
                    names = [
                        name for name, _ in properties(value) if name.lower() == pattern.lower()
                    ]
                    chosen.setdefault(names[0] if names else pattern, getProperty(value, pattern))
            yield chosen
        else:
            yield value


_MISSING = object()


def _calculatedName(spec):
    if isinstance(spec, ScriptBlock):
        return spec.text
    for key, item in spec.items():
        if str(key).lower() in ("name", "n", "label", "l"):
            return toText(item)
    expression = _expressionOf(spec)
    return str(expression)


def _expressionOf(spec):
    for key, item in spec.items():
        if str(key).lower() in ("expression", "e"):
            return item
    raise CmdletError(
        "The hash table of a calculated property needs an Expression (or E) key: "
        '@{Name="Size"; Expression={$_.MaxMessageSize}}.'
    )


def propertyValue(context, value, spec):
    """
    The value of a property as Select-Object, Sort-Object, Group-Object
    and Measure-Object name it: a name, a script block run with C{$_} set
    (C{{$_.Recipients -join ";"}}), or a calculated property's hashtable
    (C{@{Name="R"; Expression={...}}}).
    """
    if isinstance(spec, dict):
        spec = _expressionOf(spec)
    if isinstance(spec, ScriptBlock):
        output = context.session.invokeBlock(spec, value)
        return None if not output else output[0] if len(output) == 1 else tuple(output)
    return getProperty(value, str(spec))


def _count(value, name):
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise CmdletError(f"Cannot bind parameter '{name}': \"{value}\" is not a number.") from None
    if count < 0:
        raise CmdletError(
            f"Cannot validate argument on parameter '{name}': it must not be negative."
        )
    return count


@cmdlet(
    "Where-Object",
    Parameter("FilterScript", position=0),
    Parameter("Value", position=1),
    *(Parameter(name, kind="switch") for name in _OPERATORS),
    Parameter("InputObject", pipeline=True),
)
def whereObject(context, FilterScript=None, Value=None, InputObject=None, **operators):
    """
    Pass on the objects a filter accepts.

    Where-Object {$_.Name -like "To*"}
    Where-Object Name -like "To*"            (PowerShell 3's short form)

    A filter compares (-eq -ne -gt -ge -lt -le -like -notlike -match
    -notmatch -contains -notcontains -in -notin; -ceq and the like are
    case-sensitive) and combines (-and -or -xor -not).  It reads properties
    ($_.Name, or Name alone) and variables.  A script block that is more
    than a filter (it runs commands, calls methods with arguments) runs as
    the Shell's statements, C{$_} set, and its output decides.
    """
    if FilterScript is None:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: FilterScript."
        )
    if isinstance(FilterScript, ScriptBlock):
        node = _parsed(FilterScript)
        if node is None:
            keep = truthy(context.session.invokeBlock(FilterScript, InputObject))
        else:
            try:
                keep = evaluator.matches(node, InputObject, context.variables)
            except FilterError as error:
                raise CmdletError(str(error)) from None
    else:
        given = [name for name, on in operators.items() if on]
        if len(given) > 1:
            raise CmdletError(
                "Parameter set cannot be resolved using the specified named parameters."
            )
        value = evaluator.member(InputObject, str(FilterScript)) if not isScalar(InputObject) else None
        if not given:
            keep = truthy(value)
        else:
            try:
                keep = truthy(evaluator.compare(given[0].lower(), value, Value))
            except FilterError as error:
                raise CmdletError(str(error)) from None
    if keep:
        return InputObject
    return None


_FILTERS = {}


def _parsed(block):
    """
    @return: the filter a script block is, or C{None} when the Shell's
        language reads it and the filter language does not.
    @raise FilterSyntaxError: when neither does.
    """
    if block.text not in _FILTERS:
        try:
            _FILTERS[block.text] = parseFilter(block.text)
        except FilterSyntaxError:
            if block.statements is None:
                raise
            _FILTERS[block.text] = None
    return _FILTERS[block.text]


@cmdlet(
    "ForEach-Object",
    Parameter("Process", position=0, aliases=("MemberName",)),
    Parameter("Begin"),
    Parameter("End"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def forEachObject(context, Process=None, Begin=None, End=None, InputObject=None):
    """
    Run a script block for each object, C{$_} set to it
    (C{ForEach-Object { Set-ReceiveConnector $_.Identity -MaxMessageSize
    25MB }}), or output each object's property (C{ForEach-Object Name}).
    -Begin runs before the first object, -End after the last.
    """
    if Process is None:
        raise CmdletError(
            "Cannot process command because of one or more missing mandatory parameters: Process."
        )
    session = context.session
    items = (None,) if InputObject is None else _objects(InputObject)
    if Begin is not None:
        yield from session.invokeBlock(Begin)
    for item in items:
        if isinstance(Process, ScriptBlock):
            yield from session.invokeBlock(Process, item)
            continue
        try:
            value = evaluator.member(item, str(Process))
        except FilterError as error:
            raise CmdletError(str(error)) from None
        yield from _objects(value)
    if End is not None:
        yield from session.invokeBlock(End)


@cmdlet(
    "Sort-Object",
    Parameter("Property", kind="list", position=0),
    Parameter("Descending", kind="switch"),
    Parameter("Unique", kind="switch"),
    Parameter("InputObject", pipeline=True),
    collectInput=True,
)
def sortObject(context, Property=None, Descending=False, Unique=False, InputObject=None):
    """
    Sort the objects by their properties (C{Sort-Object MessageCount
    -Descending}), or by themselves.
    """
    objects = list(_objects(InputObject))

    def keys(value):
        if Property is None:
            return [value]
        return [propertyValue(context, value, name) for name in Property]

    def order(a, b):
        for left, right in zip(keys(a), keys(b)):
            if evaluator.compare("lt", left, right):
                return -1
            if evaluator.compare("gt", left, right):
                return 1
        return 0

    objects.sort(key=functools.cmp_to_key(order), reverse=Descending)
    if Unique:
        unique = []
        for value in objects:
            if not unique or order(unique[-1], value) != 0:
                unique.append(value)
        objects = unique
    return objects
