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
    status is non-zero when a line fails.
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
    """

    name: str
    kind: str = "value"
    mandatory: bool = False
    position: int | None = None
    pipeline: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cmdlet:
    name: str
    function: object
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)
    supportsWhatIf: bool = False


@dataclass
class Context:
    """
    What a cmdlet runs against.

    @ivar configPath: the org.ini the Shell was opened on.
    @ivar host: the L{exmta.shell.host} object that prompts and prints.
    @ivar whatIf: whether -WhatIf was given: show the change, do not make it.
    @ivar variables: the Shell's variables, by lower-case name.
    """

    configPath: str
    host: object = None
    whatIf: bool = False
    variables: dict = field(default_factory=dict)


def cmdlet(name, *parameters, supportsWhatIf=False):
    """
    Register the decorated function as the cmdlet C{name}.
    """

    def register(function):
        CMDLETS[name.lower()] = Cmdlet(name, function, tuple(parameters), supportsWhatIf)
        return function

    return register
