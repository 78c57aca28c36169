"""
What the configuration cmdlets share: how a value given to a cmdlet
becomes org.ini text, how a cmdlet changes org.ini (L{apply}), and how Get-
cmdlets show values as Exchange does.

Each object is a section of org.ini and each parameter a key of it, under
the same name (STYLE.md rule 10), so the parameters a cmdlet takes come
from the org.ini schema of L{exmta.config.organization} (L{parameters}).
A cmdlet that writes:

  - changes only the keys it is given (a value of C{$null} removes the key,
    so Exchange's default applies again; a hashtable C{@{Add=...;
    Remove=...}} adds to or removes from a multi-valued one);
  - validates the whole new org.ini with the server's own rules and refuses
    a change the server would refuse, naming the section, key and rule;
  - then rewrites org.ini atomically under its lock, keeping comments,
    order and untouched sections (L{exmta.config.editor});
  - with -WhatIf, prints the change as a unified diff instead.
"""

import fnmatch
from contextlib import contextmanager

from exmta.config import ini, loadOrganization
from exmta.config.editor import editing, formatValue, retrying
from exmta.errors import ConfigError
from exmta.shell.cmdlet import CmdletError, Parameter, identityOf

KB, MB, GB = 1024, 1024**2, 1024**3

# Writing: how a value a cmdlet is given becomes org.ini text.

_LIST_PARSERS = {
    "commaList", "flags", "addressSpaces", "smartHosts", "ipRanges", "bindings", "dnsServers",
    "domainList", "dsnCodes",
}


def kindOf(schema, key):
    """
    @return: how the org.ini key C{key} is typed, from its parser in
        C{schema}: C{"list"}, C{"size"}, C{"timespan"}, C{"bool"},
        C{"number"} or C{"text"}.
    """
    parser = schema[key][0]
    name = getattr(parser, "__qualname__", "").split(".")[0]
    if name in _LIST_PARSERS:
        return "list"
    return {"byteSize": "size", "timespan": "timespan", "boolean": "bool", "integer": "number"}.get(
        name, "text"
    )


def parameters(schema, leaveOut=()):
    """
    @return: a L{Parameter} for every key of C{schema} but C{leaveOut}:
        multi-valued keys take comma lists.
    """
    return tuple(
        Parameter(key, kind="list" if kindOf(schema, key) == "list" else "value")
        for key in schema
        if key not in leaveOut
    )


def sizeText(number):
    """
    @return: a byte count as org.ini writes sizes: C{10MB}, C{64KB}, or the
        bare number of bytes.
    """
    for unit, name in ((GB, "GB"), (MB, "MB"), (KB, "KB")):
        if number and number % unit == 0:
            return f"{number // unit}{name}"
    return str(number)


def valueText(schema, key, value, current=None):
    """
    @param current: the key's value now, as written, for a hashtable
        C{@{Add=...; Remove=...}} on a multi-valued key.
    @return: C{value} as org.ini text for C{key}, or L{None} for C{$null}.
    @raise CmdletError: it cannot be written there.
    """
    kind = kindOf(schema, key)
    if value is None:
        return None
    value = hashtableOf(value)
    if isinstance(value, dict):
        if kind != "list":
            raise CmdletError(f"-{key} is not multi-valued; @{{Add=...; Remove=...}} does not apply")
        return _merged(key, value, current)
    if kind == "size" and isinstance(value, int) and not isinstance(value, bool):
        return sizeText(value)
    if kind == "bool" and not isinstance(value, (bool, str)):
        raise CmdletError(f"-{key} takes $true or $false, not {value!r}")
    try:
        return formatValue(value)
    except ValueError as error:
        raise CmdletError(f"-{key}: {error}") from None


def hashtableOf(value):
    """
    @return: the hashtable C{@{Add=...}} given to a comma-list parameter,
        which hands it over as a one-item tuple; else C{value}.
    """
    if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    return value


def items(value):
    if isinstance(value, (tuple, list, set, frozenset)):
        return [formatValue(item) for item in value]
    return [item.strip() for item in formatValue(value).split(",") if item.strip()]


def _merged(key, change, current):
    chosen = [item.strip() for item in (current or "").split(",") if item.strip()]
    for verb, value in change.items():
        verb = str(verb).lower()
        if verb not in ("add", "remove"):
            raise CmdletError(f"-{key}: a hashtable takes the keys Add and Remove, not {verb!r}")
        for item in items(value):
            present = [i for i in chosen if i.lower() == item.lower()]
            if verb == "add" and not present:
                chosen.append(item)
            elif verb == "remove":
                chosen = [i for i in chosen if i.lower() != item.lower()]
    return ", ".join(chosen) if chosen else None


# Editing org.ini from a cmdlet.


def refused(error, path):
    """
    @return: a L{CmdletError} for the L{ConfigError} of a change the server
        would refuse.
    """
    where = f"[{error.section}] " if error.section else ""
    if error.key:
        where += f"{error.key}: "
    return CmdletError(f"{where}{error.message} (the change was refused; {path} is unchanged)")


@contextmanager
def editingFor(context):
    try:
        with editing(context.configPath) as edit:
            yield edit
    except ConfigError as error:
        raise refusal(error, context) from None
    except ValueError as error:
        raise CmdletError(str(error)) from None


def refusal(error, context):
    if error.line is None and error.section is None:
        return CmdletError(str(error))
    return refused(error, context.configPath)


def apply(context, action, target, change):
    """
    Make one change to org.ini for a cmdlet.  On etcd, a change that
    another administrator's change overtook is made again on the new text
    (L{exmta.config.editor.retrying}), so neither is lost.

    @param change: called with the L{Document}; edits it and returns
        L{None} or a callable, called with the new L{Organization} after the
        change validated and before org.ini is written (to store a secret
        the new text names), not at all under -WhatIf.
    @return: the new organization, or L{None} under -WhatIf (after printing
        the diff).
    @raise CmdletError: the change is impossible or the server would refuse
        it; org.ini is unchanged.
    """

    def attempt():
        with editingFor(context) as edit:
            effect = change(edit.document)
            organization = edit.validate()
            if not context.shouldProcess(target, action):
                diff = edit.diff()
                if context.host is not None and diff:
                    context.host.write(diff.rstrip("\n"))
                return None
            if effect is not None:
                effect(organization)
            edit.write()
            return organization

    try:
        return retrying(attempt)
    except ConfigError as error:
        raise refusal(error, context) from None


def setKeys(document, kind, name, schema, given):
    """
    Set the keys C{given} ({parameter: value}) of the section C{[kind name]}.
    """
    for key, value in given.items():
        span = document.section(kind, name)
        current = span.get(key)
        document.set(span, key, valueText(schema, key, value, current))


def load(context):
    """
    @return: the organization of the Shell's org.ini.
    @raise CmdletError: it cannot be read or is not valid.
    """
    try:
        return loadOrganization(context.configPath)
    except ConfigError as error:
        raise CmdletError(str(error)) from None


def comments(organization):
    """
    @return: {(kind, name), lower-case: Comment} of the sections of
        C{organization}'s org.ini that have a Comment key (which the
        server does not read, so the organization does not keep it).
    """
    sections = ini.parse(organization.text, organization.path)
    return {
        (section.kind.lower(), section.name.lower()): section.get("Comment").value
        for section in sections
        if section.get("Comment") is not None
    }


def notFound(identity, path):
    return CmdletError(
        f"The operation couldn't be performed because object '{identity}' couldn't be found in {path}."
    )


def matching(items, identity, *names):
    """
    @return: the items one of whose C{names} attributes matches
        C{identity}, case-insensitively; C{*} and C{?} are wildcards.
    """
    if identity is None:
        return list(items)
    pattern = identityOf(identity).strip().lower()
    return [
        item
        for item in items
        if any(fnmatch.fnmatchcase(str(getattr(item, n)).lower(), pattern) for n in names)
    ]


def nameOf(Name, what):
    name = identityOf(Name)
    if not name or not name.strip():
        raise CmdletError(f"-Name: a {what} needs a name")
    return name.strip()


def usageOf(given, allowed):
    """
    @return: the usage of -Usage or of a switch (-Internal, -Custom...),
        in its canonical spelling, or L{None} when neither is given.
    """
    chosen = [u for u in allowed if given.pop(u, False)]
    usage = given.pop("Usage", None)
    if usage is not None:
        canonical = {u.lower(): u for u in allowed}.get(str(usage).strip().lower())
        if canonical is None:
            raise CmdletError(f"-Usage: {usage!r} is not one of: {', '.join(allowed)}")
        chosen.append(canonical)
    if len(set(chosen)) > 1:
        raise CmdletError(
            "Parameter set cannot be resolved: give one usage, -Usage or one of "
            + ", ".join(f"-{u}" for u in allowed)
        )
    return chosen[0] if chosen else None


def usageParameters(allowed):
    return (Parameter("Usage"),) + tuple(Parameter(u, kind="switch") for u in allowed)


# What Get- cmdlets show.


def sizeShown(number):
    """
    @return: a size as Exchange shows one, C{10 MB (10,485,760 bytes)}, or
        C{unlimited}; the text reads back as the same size.
    """
    if number is None:
        return "unlimited"
    for unit, name in ((GB, "GB"), (MB, "MB"), (KB, "KB")):
        if number >= unit and (number * 1000) % unit == 0:
            amount = f"{number / unit:.3f}".rstrip("0").rstrip(".")
            return f"{amount} {name} ({number:,} bytes)"
    return f"{number} B ({number:,} bytes)"


def countShown(number):
    return "unlimited" if number is None else number


def flagsShown(chosen, order):
    return ", ".join(value for value in order if value in chosen) or "None"


