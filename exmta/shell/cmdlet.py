"""
How a cmdlet of the exmta Shell is declared.

A cmdlet is a function registered under its Exchange name with the
parameters it takes::

    @cmdlet(
        "Get-ReceiveConnector",
        Parameter("Identity", position=0),
        Parameter("Server"),
    )
    def getReceiveConnector(context, Identity=None, Server=None):
        ...
        yield ReceiveConnectorView(...)

  - The function receives a L{Context} and the bound parameters as keyword
    arguments named exactly as declared; parameters not given are absent
    (the function's defaults apply).
  - It returns or yields the objects it outputs (dataclasses or mappings);
    the pipeline hands them to the next cmdlet, the end of the pipeline
    prints them (Format-List / Format-Table).
  - A parameter with C{pipeline=True} is bound from each object piped in
    (C{Get-ReceiveConnector X | Add-ADPermission ...} binds Identity).
  - Errors are L{CmdletError}s, printed PowerShell-style; the Shell's exit
    status is non-zero when a line fails.  Raising one stops the pipeline;
    L{Context.writeError} reports one object's failure and lets the cmdlet
    go on with the next (a "non-terminating" error).

How the Shell calls a cmdlet (L{exmta.shell.runtime}):

  - Alone, or first in a pipeline: once, with what the command line bound.
  - Later in a pipeline: once per object piped in, with the command line's
    parameters plus the pipeline parameters bound from that object: a
    parameter named C{Identity} takes the whole object when it has an
    C{Identity} or C{Name} (so the cmdlet sees the connector, not a string:
    use L{identityOf}), or when it is a plain value (C{"X" | Get-...});
    any other pipeline parameter takes the object's attribute or key of its
    name (or alias), case-insensitively, and a parameter named
    C{InputObject} takes the whole object.
  - With C{collectInput=True}: once, the pipeline parameter bound to the
    tuple of every object piped in (Format-Table needs them all).
  - A pipeline object that binds no parameter, or leaves a mandatory one
    unbound, is an error for that object; the next is still offered.
  - Every cmdlet takes -Confirm, and ignores it (exmta never asks);
    cmdlets declared with C{supportsWhatIf=True} take -WhatIf, which sets
    C{context.whatIf}: call C{context.shouldProcess(...)} before a change,
    and make it only when that returns C{True}.

Printing: output objects (dataclasses, mappings) are printed at the end of
the pipeline, as a table for four properties or fewer, else as a list; a
class attribute C{DefaultDisplayPropertySet = ("Identity", "Enabled")}
makes the default a table of those columns (Format-List still shows all).
Text that is not output (a -WhatIf diff, progress) goes through
C{context.host.write(text)}; warnings through C{context.writeWarning}.
A property named C{...Password} or C{...Secret} is never shown.

Values a cmdlet receives are Python values: C{str} (barewords and quoted
strings), C{int}/C{float} (C{25}, C{10MB} is 10485760 as in PowerShell),
C{True}/C{False}/C{None} (C{$true}/C{$false}/C{$null}), C{tuple} (comma
lists), C{dict} (C{@{Add="a"}}), L{ScriptBlock} (C{{FromAddress -eq "x"}}),
L{PSCredential}, L{SecureString}, or whatever object a variable holds.
"""

from dataclasses import dataclass, field

CMDLETS = {}


class CmdletError(Exception):
    """
    A cmdlet could not do what it was asked; the message says why, naming
    the token or parameter at fault.
    """


@dataclass(frozen=True)
class Parameter:
    """
    @ivar kind: C{"value"} (any value: string, number, list, object),
        C{"switch"} (present or not; C{-Confirm:$false} style values allowed),
        or C{"list"} (a comma list; a single value becomes a one-item tuple).
    @ivar position: the position of an unnamed argument that binds it.
    @ivar pipeline: bound from the objects piped into the cmdlet.
    @ivar remaining: takes the unnamed arguments no positional parameter
        took, as a tuple (PowerShell's ValueFromRemainingArguments).
    """

    name: str
    kind: str = "value"
    mandatory: bool = False
    position: int | None = None
    pipeline: bool = False
    aliases: tuple[str, ...] = ()
    remaining: bool = False


@dataclass(frozen=True)
class Cmdlet:
    """
    @ivar collectInput: call the function once with every object piped in
        (as a tuple bound to its pipeline parameter) instead of once per
        object.
    """

    name: str
    function: object
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)
    supportsWhatIf: bool = False
    collectInput: bool = False


@dataclass
class Context:
    """
    What a cmdlet runs against.

    @ivar configPath: the org.ini the Shell was opened on.
    @ivar host: the L{exmta.shell.host} object that prompts and prints.
    @ivar whatIf: whether -WhatIf was given: show the change, do not make it.
    @ivar variables: the Shell's variables, by lower-case name.
    @ivar verbose: whether -Verbose was given (L{writeVerbose} prints only then).
    @ivar errors: the non-terminating errors written by L{writeError}, which
        the Shell prints after the call and counts as a failed line.
    @ivar session: the L{exmta.shell.runtime.Session} running the cmdlet,
        for the cmdlets about the Shell itself (Get-Command).
    """

    configPath: str
    host: object = None
    whatIf: bool = False
    variables: dict = field(default_factory=dict)
    verbose: bool = False
    errors: list = field(default_factory=list)
    session: object = None

    def shouldProcess(self, target, action=None):
        """
        PowerShell's C{ShouldProcess}: with -WhatIf, print what would be done
        (C{What if: Performing the operation "ACTION" on target "TARGET".},
        or C{What if: TARGET} without an action) and return C{False}; else
        return C{True}.  Write the details (a diff) with C{self.host.write}
        after it.  exmta never asks for confirmation: -Confirm is accepted
        and ignored.
        """
        if not self.whatIf:
            return True
        if action is None:
            message = f"What if: {target}"
        else:
            message = f'What if: Performing the operation "{action}" on target "{target}".'
        self._write("write", message)
        return False

    def writeWarning(self, message):
        """
        Print C{WARNING: message} (to standard error).
        """
        self._write("writeWarning", message)

    def writeVerbose(self, message):
        """
        Print C{VERBOSE: message} when -Verbose was given.
        """
        if self.verbose:
            self._write("writeVerbose", message)

    def writeError(self, message):
        """
        Report a failure that does not stop the cmdlet (one object of many);
        the line counts as failed.
        """
        self.errors.append(str(message))

    def _write(self, method, message):
        if self.host is not None:
            getattr(self.host, method)(message)


class SecureString:
    """
    A secret typed at the Shell (C{Read-Host -AsSecureString},
    C{ConvertTo-SecureString}).  It shows as C{System.Security.SecureString}
    and refuses to become text by accident: C{str()} raises; call
    L{reveal} (or L{revealPassword}) where the secret is really needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value):
        object.__setattr__(self, "_value", str(value))

    def __setattr__(self, name, value):
        raise AttributeError("a SecureString is read-only")

    def reveal(self):
        return self._value

    def __repr__(self):
        return "System.Security.SecureString"

    def __str__(self):
        raise CmdletError(
            "A SecureString cannot be converted to text; the cmdlet should call revealPassword()."
        )

    def __eq__(self, other):
        return isinstance(other, SecureString) and other._value == self._value

    def __hash__(self):
        return hash(self._value)


class PSCredential:
    """
    A user name and password, as C{Get-Credential} returns them.

    @ivar UserName: the user name.
    @ivar Password: the password, plain text (a C{str}); the repr and the
        Shell's formatting never show it.
    """

    __slots__ = ("UserName", "Password")

    def __init__(self, UserName, Password):
        object.__setattr__(self, "UserName", UserName)
        object.__setattr__(self, "Password", revealPassword(Password))

    def __setattr__(self, name, value):
        raise AttributeError("a PSCredential is read-only")

    def GetNetworkCredential(self):
        """
        PowerShell's way to the plain password:
        C{$c.GetNetworkCredential().Password}.
        """
        return self

    def __repr__(self):
        return f"PSCredential(UserName={self.UserName!r}, Password=<hidden>)"

    def __str__(self):
        return "System.Management.Automation.PSCredential"

    def __eq__(self, other):
        return (
            isinstance(other, PSCredential)
            and (other.UserName, other.Password) == (self.UserName, self.Password)
        )

    def __hash__(self):
        return hash((self.UserName, self.Password))


@dataclass(frozen=True)
class ScriptBlock:
    """
    A script block, C{{ FromAddress -eq "x" }}: the text between the
    braces (C{str()} gives it, so a C{-Filter} may be a script block or a
    string alike).  L{exmta.opath} reads the filter language of
    Where-Object and of Exchange's -Filter; the Shell runs it as
    statements (ForEach-Object, Where-Object beyond a filter).

    @ivar statements: the statements the Shell's parser read in it, or
        C{None} when it is not in the Shell's language (a filter may still
        be: C{{Name -like "To*"}}).
    @ivar source: the text C{statements} point into (the whole script).
    @ivar error: the L{exmta.shell.syntax.ShellSyntaxError} of the text,
        when C{statements} is C{None}.
    """

    text: str
    statements: tuple | None = field(default=None, compare=False, repr=False)
    source: str | None = field(default=None, compare=False, repr=False)
    error: Exception | None = field(default=None, compare=False, repr=False)

    def __str__(self):
        return self.text


def revealPassword(value):
    """
    @return: the plain text of a password given as a C{str}, a
        L{SecureString} or a L{PSCredential}.
    @raise CmdletError: for anything else.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, SecureString):
        return value.reveal()
    if isinstance(value, PSCredential):
        return value.Password
    raise CmdletError(f"Cannot convert '{type(value).__name__}' to a password.")


def identityOf(value):
    """
    @return: the identity a cmdlet's C{Identity} parameter names, as text:
        the value itself when it is text or a number, else the object's
        C{Identity} (or C{identity}), else its C{Name} (or C{name}) — as
        when a Get- cmdlet's output is piped into a Set- cmdlet.
    """
    if value is None or isinstance(value, (str, int, float)):
        return value if value is None or isinstance(value, str) else str(value)
    for name in ("Identity", "identity", "Name", "name"):
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and key.lower() == name.lower():
                    return identityOf(value[key])
        elif hasattr(value, name):
            return identityOf(getattr(value, name))
    return str(value)


def cmdlet(name, *parameters, supportsWhatIf=False, collectInput=False, registry=None):
    """
    Register the decorated function as the cmdlet C{name}.

    @param registry: where to register it; L{CMDLETS} by default (tests
        use their own mapping).
    """

    def register(function):
        where = CMDLETS if registry is None else registry
        where[name.lower()] = Cmdlet(
            name, function, tuple(parameters), supportsWhatIf, collectInput
        )
        return function

    return register
