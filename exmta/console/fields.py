"""
The fields of the console's property pages (a receive connector's tabs,
a transport server's properties): each shows the value a Get- cmdlet
read, reads what was posted, and gives the Set- cmdlet's argument, so a
page runs its Set- cmdlet with only the parameters whose value changed,
as the EMC's property sheets do.

L{Items} is EMC's list with Add, Edit and Remove (bindings, remote IP
ranges) without JavaScript: each entry is a text input (edited in
place), each Remove and the Add are submit buttons whose C{action}
names the list, and the page shows itself again with the list changed.
"""

from twisted.web.template import tags

from exmta.console.page import Bare, command
from exmta.console.wizard import checkbox, choice, field, fieldError


class _Field:
    """
    @ivar name: the Shell parameter (and form field) name.
    @ivar label: the EMC's words for it.
    """

    def __init__(self, name, label):
        self.name = name
        self.label = label

    def current(self, view):
        """
        @return: the field's value in the form, from an object a Get-
            cmdlet output.
        """
        return _text(getattr(view, self.name))

    def read(self, context, action):
        return context.arg(self.name).strip()

    def argument(self, value):
        """
        @return: the Set- cmdlet's argument for C{value}; L{NULL} to clear.
        """
        return value if value else NULL


class _Null:
    """
    C{$null}: the value of a cleared setting (its default applies again).
    """


NULL = _Null()


def _text(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


class Text(_Field):
    """
    A text field.

    @ivar bare: whether the value is a setting's name, a number, a size or
        a timespan, written without quotes as the reference document
        writes them (C{-MaxMessageSize 20MB}).
    """

    def __init__(self, name, label, bare=False):
        super().__init__(name, label)
        self.bare = bare

    def render(self, context, value, errors):
        return field(self.name, self.label, value, errors, size="40")

    def argument(self, value):
        if not value:
            return NULL
        return Bare(value) if self.bare else value


class CommaList(Text):
    """
    A comma list in one text field (DNS servers); empty is C{@()}.
    """

    def argument(self, value):
        return [Bare(v.strip()) for v in value.split(",") if v.strip()]


class Check(_Field):
    def current(self, view):
        return bool(getattr(view, self.name))

    def read(self, context, action):
        return context.arg(self.name) == "true"

    def render(self, context, value, errors):
        return checkbox(self.name, self.label, value, errors)

    def argument(self, value):
        return value


class Choice(_Field):
    def __init__(self, name, label, options):
        super().__init__(name, label)
        self.options = options

    def render(self, context, value, errors):
        return choice(self.name, self.label, [(o, o) for o in self.options], value, errors)

    def argument(self, value):
        return Bare(value)


class Flags(_Field):
    """
    Check boxes of a flags setting (AuthMechanism, PermissionGroups).

    @ivar flags: (flag, label) pairs; a flag whose label is L{None} is
        shown only when set, and kept as it is (exmta does not offer it:
        Integrated Windows authentication, Custom groups).
    @ivar unsupported: flags shown disabled, with why.
    """

    def __init__(self, name, label, flags, unsupported=()):
        super().__init__(name, label)
        self.flags = flags
        self.unsupported = dict(unsupported)

    def current(self, view):
        text = getattr(view, self.name) or "None"
        return frozenset(f.strip() for f in text.split(",") if f.strip() not in ("", "None"))

    def read(self, context, action):
        chosen = set(context.args(self.name))
        return frozenset(flag for flag, _ in self.flags if flag in chosen)

    def keep(self, current, new):
        """
        @return: C{new} with the flags of C{current} that the form cannot
            change.
        """
        fixed = {flag for flag in current if flag in self.unsupported or flag not in dict(self.flags)}
        return frozenset(new | fixed)

    def render(self, context, value, errors):
        boxes = []
        for flag, label in self.flags:
            box = tags.input(type="checkbox", name=self.name, value=flag, id=f"{self.name}-{flag}")
            if flag in value:
                box(checked="checked")
            boxes.append(tags.p(tags.label(box, " ", label)))
        for flag, why in self.unsupported.items():
            box = tags.input(type="checkbox", disabled="disabled", id=f"{self.name}-{flag}")
            if flag in value:
                box(checked="checked")
            boxes.append(tags.p(tags.label(box, " ", why), class_="unsupported"))
        return tags.fieldset(tags.legend(self.label), *boxes, fieldError(self.name, errors))

    def argument(self, value):
        order = [flag for flag, _ in self.flags] + list(self.unsupported)
        chosen = sorted(value, key=lambda f: order.index(f) if f in order else len(order))
        return [Bare(flag) for flag in chosen] or Bare("None")


class Items(_Field):
    """
    EMC's list with Add, Edit, Remove.
    """

    def __init__(self, name, label, addLabel, example=""):
        super().__init__(name, label)
        self.addLabel = addLabel
        self.example = example

    def current(self, view):
        return list(getattr(view, self.name))

    def read(self, context, action):
        """
        @return: the entries as edited; a Remove button drops its entry,
            Add (or any other button, so that Enter in the field keeps what
            was typed) appends the new one.
        """
        entries = [v.strip() for v in context.args(self.name)]
        if action.startswith(f"remove-{self.name}-"):
            index = action.rpartition("-")[2]
            if index.isdigit() and int(index) < len(entries):
                del entries[int(index)]
        new = context.arg(f"{self.name}-new").strip()
        if new and not action.startswith("remove-"):
            entries.append(new)
        return [entry for entry in entries if entry]

    def render(self, context, value, errors):
        rows = [
            tags.tr(
                tags.td(tags.input(name=self.name, value=entry, size="40",
                                   id=f"{self.name}-{index}")),
                tags.td(
                    tags.button("Remove", type="submit", name="action",
                                value=f"remove-{self.name}-{index}",
                                id=f"remove-{self.name}-{index}")
                ),
            )
            for index, entry in enumerate(value)
        ]
        return tags.fieldset(
            tags.legend(self.label),
            tags.table(id=f"{self.name}-list")(*rows) if rows else tags.p("(none)"),
            tags.p(
                tags.label(self.addLabel, " ",
                           tags.input(name=f"{self.name}-new", id=f"{self.name}-new",
                                      placeholder=self.example, size="40")),
                " ",
                tags.button("Add", type="submit", name="action", value=f"add-{self.name}",
                            id=f"add-{self.name}"),
            ),
            fieldError(self.name, errors),
        )

    def argument(self, value):
        return [Bare(v) for v in value]


def defaultButton(value, label):
    """
    @return: a submit button placed first in a form, out of sight, so that
        Enter in a field means C{value} (Next, OK) rather than the first
        Remove or Add button of a list.
    """
    return tags.button(label, type="submit", name="action", value=value, class_="default",
                       tabindex="-1", **{"aria-hidden": "true"})


def readForm(fields, context, action, old):
    """
    @return: {field: value} as posted; flags the form cannot change keep
        their value in C{old}.
    """
    new = {f.name: f.read(context, action) for f in fields}
    for f in fields:
        if isinstance(f, Flags):
            new[f.name] = f.keep(old[f.name], new[f.name])
    return new


def changes(fields, old, new):
    """
    @return: [(parameter, argument)] of the fields whose value changed
        between C{old} and C{new} ({name: form value}), in the fields'
        order.
    """
    return [(f.name, f.argument(new[f.name])) for f in fields if new[f.name] != old[f.name]]


def setCommand(cmdlet, identity, changed):
    """
    @return: the Shell text running C{cmdlet} on C{identity} with the
        C{changed} parameters (L{changes}), C{$null} for cleared ones.
    """
    text = command(cmdlet, identity, **{name: value for name, value in changed if value is not NULL})
    cleared = [f" -{name} $null" for name, value in changed if value is NULL]
    return text + "".join(cleared)
