"""
Running the Shell's language: a L{Session} runs statements against the
cmdlets of L{exmta.shell.cmdlet.CMDLETS}, binding their parameters the way
PowerShell does.

    session = Session("etc/org.ini")          # prints on the terminal
    session.run('Get-SendConnector | Format-List')   # False when it failed
    objects = session.invoke("Get-SendConnector")    # the objects; raises ShellError

Binding, as in PowerShell:

  - Cmdlet names are case-insensitive; some have aliases (C{fl}, C{ft}).
  - Parameter names are case-insensitive and may be shortened to any
    prefix that names one parameter; an exact name or alias wins over
    prefixes; a prefix of several is an error naming them.
  - C{-Name value} and C{-Name:value}; a switch is C{-Name} or
    C{-Name:$false}; unnamed arguments bind to the positional parameters
    in order of position.  A C{kind="list"} parameter makes a single value
    a one-item tuple.
  - The common parameters: C{-WhatIf} (on cmdlets that support it; sets
    C{context.whatIf}); C{-Confirm}, accepted by every cmdlet and
    ignored, for exmta never asks for confirmation, so
    C{-Confirm:$false} in a script copied from Exchange does what it did
    there; C{-Verbose} (sets C{context.verbose}); C{-ErrorAction}:
    C{Continue} (the default: the cmdlet's errors are shown, the script
    goes on), C{SilentlyContinue} or C{Ignore} (they are not shown and do
    not make the exit status 1; C{$?} is still C{$false}), C{Stop} (they
    are terminating: C{try} catches them); C{$ErrorActionPreference}
    sets the default; the others (C{-Debug}, C{-ErrorVariable},
    C{-OutVariable}, ...) are accepted and ignored.
  - Missing mandatory parameters are an error (PowerShell would prompt).
  - In a pipeline, a cmdlet is called once per object piped in, its
    pipeline parameters bound from the object (see
    L{exmta.shell.cmdlet}).

Errors do not stop a script: the next statement runs, and the session
remembers that one failed (L{Session.failed}), which makes the Shell's exit
status 1 (L{exmta.shell.control} tells which errors end what).  They are
printed as PowerShell prints them::

    Get-Frob : The term 'Get-Frob' is not recognized as the name of a cmdlet, ...
    At line:1 char:1
    + Get-Frob -Name x
    + ~~~~~~~~
"""

import difflib
import importlib
import os
import types
from collections.abc import Iterator

from exmta.opath import lookupVariable
from exmta.shell.cmdlet import CMDLETS, Context, Parameter
from exmta.shell.control import (
    ErrorRecord,
    ExitRequest,
    FlowRequest,
    ShellError,
    describe,
    notRecognized,
)
from exmta.shell.evaluator import Evaluation, _enumerate, single
from exmta.shell.format import formatDefault, getProperty, hasProperty, isScalar, toText
from exmta.shell.host import Host
from exmta.shell.parser import parse
from exmta.shell.syntax import Command, CommandParameter, Script, ShellSyntaxError

__all__ = ["ExitRequest", "Session", "ShellError", "loadCmdlets", "notRecognized"]

# Aliases of cmdlet names, by lower-case alias (exmta.shell.builtins adds them).
ALIASES = {}

# The modules whose cmdlets the Shell offers; those not written yet are skipped.
CMDLET_MODULES = (
    "exmta.shell.builtins",
    "exmta.shell.config_cmdlets",
    "exmta.shell.queue_cmdlets",
    "exmta.shell.agent_cmdlets",
    "exmta.shell.diagnostic_cmdlets",
    "exmta.shell.utility_cmdlets",
)

COMMON_PARAMETERS = (
    Parameter("Verbose", kind="switch", aliases=("vb",)),
    Parameter("Debug", kind="switch", aliases=("db",)),
    Parameter("ErrorAction", aliases=("ea",)),
    Parameter("WarningAction", aliases=("wa",)),
    Parameter("InformationAction", aliases=("infa",)),
    Parameter("ErrorVariable", aliases=("ev",)),
    Parameter("WarningVariable", aliases=("wv",)),
    Parameter("InformationVariable", aliases=("iv",)),
    Parameter("OutVariable", aliases=("ov",)),
    Parameter("OutBuffer", aliases=("ob",)),
    Parameter("PipelineVariable", aliases=("pv",)),
)
WHATIF = Parameter("WhatIf", kind="switch", aliases=("wi",))
CONFIRM = Parameter("Confirm", kind="switch", aliases=("cf",))
_ERROR_ACTIONS = ("Break", "Continue", "Ignore", "Inquire", "SilentlyContinue", "Stop", "Suspend")
# PowerShell's keywords the Shell does not read (L{exmta.shell.parser} reads the others).
_KEYWORDS = frozenset(
    "begin catch class data do dynamicparam else elseif end enum filter finally for in param "
    "process switch trap until using".split()
)
_READ_ONLY = frozenset({"true", "false", "null", "?"})


def loadCmdlets():
    """
    Import the modules of L{CMDLET_MODULES}, registering their cmdlets.
    """
    for name in CMDLET_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise


class _Bound:
    """
    A command whose command-line arguments are bound.
    """

    def __init__(self, cmdlet, node, arguments, whatIf, verbose, errorAction):
        self.cmdlet = cmdlet
        self.node = node
        self.arguments = arguments
        self.whatIf = whatIf
        self.verbose = verbose
        self.errorAction = errorAction
        self.quiet = errorAction in ("silentlycontinue", "ignore")


class Session(Evaluation):
    """
    A Shell session: variables, functions, and the statements run so far.

    @ivar failed: whether a statement has failed in this session.
    @ivar variables: the variables, by lower-case name (a C{ChainMap}
        while a function runs: its own scope first).
    @ivar functions: the functions the scripts defined:
        C{(FunctionDefinition, source, origin)} by lower-case name.
    @ivar errorCount: how many errors the session has had, shown or not.
    @ivar tryDepth: how many C{try} blocks are running.
    @ivar strict: whether every error ends the statement (L{invoke}).
    """

    def __init__(self, configPath, host=None, cmdlets=None, aliases=None):
        self.configPath = configPath
        self.host = Host() if host is None else host
        self.cmdlets = CMDLETS if cmdlets is None else cmdlets
        self.aliases = ALIASES if aliases is None else aliases
        self.variables = {}
        self.functions = {}
        self.failed = False
        self.succeeded = True
        self.errorCount = 0
        self.tryDepth = 0
        self.strict = False
        self._origin = None
        self._source = ""

    # Running text.

    def run(self, text, origin=None, firstLine=1):
        """
        Run every statement of C{text}, printing their output and errors;
        a failed statement does not stop the next.

        @param text: the statements, or a L{Script} already parsed.
        @param origin: the script's file name, for error positions.
        @param firstLine: the line of the script C{text} starts on.
        @return: whether every statement succeeded.
        @raise ExitRequest: when C{exit} was run.
        """
        if isinstance(text, Script):
            script = text
        else:
            try:
                script = parse("\n" * (firstLine - 1) + text)
            except ShellSyntaxError as error:
                error.origin = origin
                self.host.writeError(str(error))
                self._fail()
                return False
        ok = True
        for statement in script.statements:
            try:
                ok = self.runStatement(statement, script.source, origin) and ok
            except FlowRequest as request:
                if request.keyword in ("return", "break"):
                    # As in PowerShell: the script ends there.
                    break
        return ok

    def runStatement(self, statement, source, origin=None):
        """
        Run one statement, printing its output and errors.

        @return: whether it succeeded.
        """
        self._source, self._origin = source, origin
        before = self.errorCount
        output = []
        try:
            self.execute(statement, output.append)
        except ShellError as error:
            self._show(output)
            self._error(error.locate(source, statement.start, statement.end, origin))
        except (ExitRequest, FlowRequest, KeyboardInterrupt):
            self._show(output)
            raise
        except BrokenPipeError:
            raise
        except Exception as error:  # noqa: BLE001 - never a traceback
            self._show(output)
            self._error(
                ShellError(describe(error)).locate(source, statement.start, statement.end, origin)
            )
        else:
            self._show(output)
        self.succeeded = self.errorCount == before
        return self.succeeded

    def invoke(self, text):
        """
        Run C{text} and return the objects it outputs instead of printing
        them: for tests and programs.

        @raise ShellSyntaxError: when C{text} does not parse.
        @raise ShellError: when a statement fails.
        """
        script = parse(text)
        output = []
        self._source, self._origin = script.source, None
        self.strict = True
        try:
            for statement in script.statements:
                before = self.errorCount
                try:
                    self.execute(statement, output.append)
                except ShellError as error:
                    self._fail()
                    raise error.locate(script.source, statement.start, statement.end) from None
                except FlowRequest:
                    break
                self.succeeded = self.errorCount == before
        finally:
            self.strict = False
        return output

    def _show(self, output):
        if output:
            text = formatDefault(output, width=getattr(self.host, "width", None))
            if text:
                self.host.write(text)

    def _fail(self, quiet=False):
        self.errorCount += 1
        self.succeeded = False
        if not quiet:
            self.failed = True

    def _error(self, error, quiet=False):
        self._fail(quiet)
        # $Error, newest first, as in PowerShell.
        errors = getattr(self.variables, "maps", [self.variables])[-1]
        errors["error"] = (ErrorRecord(error), *(errors.get("error") or ())[:99])
        if not quiet:
            self.host.writeError(str(error))

    def _cmdletError(self, error, command, raised):
        """
        A cmdlet's error: non-terminating unless -ErrorAction Stop (or
        C{$ErrorActionPreference}) says so, or L{invoke} runs it.

        @param raised: whether the cmdlet raised it (else it wrote it and
            went on).
        """
        action = command.errorAction
        if action is None:
            action = toText(lookupVariable(self.variables, "ErrorActionPreference")).lower() or None
        if action == "stop" or (raised and self.strict and not command.quiet):
            error.scriptTerminating = action == "stop"
            raise error
        self._error(error, action in ("silentlycontinue", "ignore"))

    def runPipeline(self, statement, emit):
        """
        Run a pipeline: its output goes to C{emit}, unless it is assigned.
        """
        if statement.assignTo is None:
            for value in self._pipeline(statement):
                emit(value)
            return
        elements = statement.elements
        if len(elements) == 1 and not isinstance(elements[0], Command):
            value = self.evaluate(elements[0])
        else:
            value = single(list(self._pipeline(statement)))
        self.assign(statement.assignTo, value, statement)

    def assign(self, name, value, node=None):
        """
        Set the variable C{name} (C{env:X} sets the environment's,
        C{global:x} and C{script:x} the session's outermost scope).
        """
        lower = name.lower()
        scope, _, rest = lower.partition(":")
        if rest:
            if scope == "env":
                variable = name.partition(":")[2]
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = toText(value)
                return
            lower = rest
        if lower == "null":
            return
        if lower in _READ_ONLY:
            raise ShellError(
                f"Cannot overwrite variable {lower} because it is read-only or constant."
            )
        variables = self.variables
        if rest and scope in ("global", "script") and hasattr(variables, "maps"):
            variables = variables.maps[-1]
        variables[lower] = value

    # Pipelines.

    def _pipeline(self, pipeline):
        """
        @return: an iterator of the objects a pipeline outputs.
        """
        elements = pipeline.elements
        stream = None
        if not isinstance(elements[0], Command):
            stream = iter(_enumerate(self.evaluate(elements[0])))
            elements = elements[1:]
        # Bind every command's arguments before any runs, as PowerShell does.
        bound = [self._bind(command) for command in elements]
        for command in bound:
            stream = self._stream(command, stream)
        return stream if stream is not None else iter(())

    def _stream(self, command, upstream):
        cmdlet = command.cmdlet
        if upstream is None:
            self._checkMandatory(command, command.arguments, pipelineToo=True)
            yield from self._call(command, command.arguments)
            return
        self._checkMandatory(command, command.arguments, pipelineToo=False)
        pipelineParameters = [
            parameter
            for parameter in cmdlet.parameters
            if parameter.pipeline and parameter.name not in command.arguments
        ]
        if cmdlet.collectInput:
            items = tuple(upstream)
            arguments = dict(command.arguments)
            if pipelineParameters:
                arguments[pipelineParameters[0].name] = items
            self._checkMandatory(command, arguments, pipelineToo=True)
            yield from self._call(command, arguments)
            return
        for item in upstream:
            arguments = dict(command.arguments)
            for parameter in pipelineParameters:
                found, value = _fromPipeline(parameter, item)
                if found:
                    arguments[parameter.name] = _coerce(parameter, value, cmdlet.name)
            if len(arguments) == len(command.arguments):
                self._cmdletError(
                    ShellError(
                        "The input object cannot be bound to any parameters for the command either "
                        "because the command does not take pipeline input or the input and its "
                        "properties do not match any of the parameters that take pipeline input.",
                        cmdlet.name,
                    ).locate(self._source, command.node.start, command.node.end, self._origin),
                    command,
                    raised=False,
                )
                continue
            try:
                self._checkMandatory(command, arguments, pipelineToo=True)
            except ShellError as error:
                self._cmdletError(
                    error.locate(self._source, command.node.start, command.node.end, self._origin),
                    command,
                    raised=False,
                )
                continue
            yield from self._call(command, arguments)

    def _checkMandatory(self, command, arguments, pipelineToo):
        missing = [
            parameter.name
            for parameter in command.cmdlet.parameters
            if parameter.mandatory
            and parameter.name not in arguments
            and (pipelineToo or not parameter.pipeline)
        ]
        if missing:
            raise ShellError(
                "Cannot process command because of one or more missing mandatory parameters: "
                + " ".join(missing)
                + ".",
                command.cmdlet.name,
                self._source,
                command.node.start,
                command.node.end,
                self._origin,
            )

    def _call(self, command, arguments):
        """
        Call a cmdlet's function and iterate what it outputs, turning its
        failures into L{ShellError}s that name it.
        """
        cmdlet = command.cmdlet
        context = Context(
            configPath=self.configPath,
            host=self.host,
            whatIf=command.whatIf,
            variables=self.variables,
            verbose=command.verbose,
            session=self,
        )
        where = (self._source, command.node.start, command.node.end, self._origin)
        try:
            try:
                result = cmdlet.function(context, **arguments)
                if isinstance(result, (types.GeneratorType, Iterator, list, tuple)):
                    for value in result:
                        yield value
                elif result is not None:
                    yield result
            finally:
                for message in context.errors:
                    self._cmdletError(
                        ShellError(message, cmdlet.name).locate(*where), command, raised=False
                    )
        except (ShellError, ExitRequest, FlowRequest, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as error:  # noqa: BLE001 - every failure is shown, never a traceback
            self._cmdletError(
                ShellError(describe(error), cmdlet.name).locate(*where), command, raised=True
            )

    # Binding.

    def findCmdlet(self, name):
        """
        @return: the L{Cmdlet} named C{name} or one of its aliases, or C{None}.
        """
        function = self.functionCmdlet(name)
        if function is not None:
            return function
        lower = name.lower()
        lower = self.aliases.get(lower, lower).lower()
        return self.cmdlets.get(lower)

    def parametersOf(self, cmdlet):
        """
        @return: every parameter C{cmdlet} takes, common ones included.
        """
        own = {parameter.name.lower() for parameter in cmdlet.parameters}
        extra = list(COMMON_PARAMETERS)
        if cmdlet.supportsWhatIf:
            extra.append(WHATIF)
        extra.append(CONFIRM)
        return list(cmdlet.parameters) + [p for p in extra if p.name.lower() not in own]

    def resolveParameter(self, cmdlet, name):
        """
        @return: the parameter C{name} names: exactly, by alias, or as the
            prefix of exactly one parameter's name.
        @raise ShellError: when it names none or several.
        """
        lower = name.lower()
        candidates = self.parametersOf(cmdlet)
        for parameter in candidates:
            if parameter.name.lower() == lower or lower in (
                alias.lower() for alias in parameter.aliases
            ):
                return parameter
        matches = [
            parameter for parameter in candidates if parameter.name.lower().startswith(lower)
        ]
        if len(matches) > 1:
            # As in PowerShell 6 and later: a prefix shared with common
            # parameters only names the cmdlet's own (-P for -Property, not
            # -PipelineVariable).
            own = [parameter for parameter in matches if parameter in cmdlet.parameters]
            if len(own) == 1:
                return own[0]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ShellError(
                f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
                f"Possible matches include: {' '.join('-' + p.name for p in matches)}.",
                cmdlet.name,
            )
        raise ShellError(
            f"A parameter cannot be found that matches parameter name '{name}'.", cmdlet.name
        )

    def _bind(self, node):
        cmdlet = self.findCmdlet(node.name)
        if cmdlet is None:
            raise self._notFound(node)
        arguments = {}
        common = {}
        positional = []
        elements = list(node.elements)
        index = 0
        while index < len(elements):
            element = elements[index]
            index += 1
            if not isinstance(element, CommandParameter):
                positional.append(element)
                continue
            try:
                parameter = self.resolveParameter(cmdlet, element.name)
            except ShellError as error:
                raise error.locate(self._source, element.start, element.end, self._origin) from None
            if parameter.kind == "switch":
                if element.colon:
                    if element.argument is None:
                        raise self._missingArgument(cmdlet, parameter, element)
                    value = self.evaluate(element.argument)
                else:
                    value = True
            else:
                if element.colon:
                    argument = element.argument
                elif index < len(elements) and not isinstance(elements[index], CommandParameter):
                    argument = elements[index]
                    index += 1
                else:
                    argument = None
                if argument is None:
                    raise self._missingArgument(cmdlet, parameter, element)
                value = self.evaluate(argument)
            target = (
                common
                if parameter in COMMON_PARAMETERS or parameter in (WHATIF, CONFIRM)
                else arguments
            )
            if parameter.name in target:
                raise ShellError(
                    f"Cannot bind parameter because parameter '{parameter.name}' is specified more than once. "
                    "To provide multiple values to parameters that can accept multiple values, use the array "
                    'syntax. For example, "-parameter value1,value2,value3".',
                    cmdlet.name,
                    self._source,
                    element.start,
                    element.end,
                    self._origin,
                )
            try:
                target[parameter.name] = _coerce(parameter, value, cmdlet.name)
            except ShellError as error:
                raise error.locate(self._source, element.start, element.end, self._origin) from None
        free = sorted(
            (p for p in cmdlet.parameters if p.position is not None and p.name not in arguments),
            key=lambda p: p.position,
        )
        leftover = next(
            (p for p in cmdlet.parameters if p.remaining and p.name not in arguments), None
        )
        rest = None
        for element in positional:
            value = self.evaluate(element)
            if rest is not None:
                rest.append(value)
            elif free and not free[0].remaining:
                parameter = free.pop(0)
                arguments[parameter.name] = _coerce(parameter, value, cmdlet.name)
            elif free or leftover is not None:
                # From here on, every unnamed argument is the remaining one's.
                leftover = free[0] if free else leftover
                rest = [value]
            else:
                text = self._source[element.start : element.end]
                raise ShellError(
                    f"A positional parameter cannot be found that accepts argument '{text}'.",
                    cmdlet.name,
                    self._source,
                    element.start,
                    element.end,
                    self._origin,
                )
        if rest is not None:
            arguments[leftover.name] = _coerce(
                leftover, rest[0] if len(rest) == 1 else tuple(rest), cmdlet.name
            )
        errorAction = common.get("ErrorAction")
        if errorAction is not None:
            errorAction = toText(errorAction)
            if errorAction.lower() not in (action.lower() for action in _ERROR_ACTIONS):
                raise ShellError(
                    f"Cannot bind parameter 'ErrorAction'. Cannot convert value \"{errorAction}\" to type "
                    f'"System.Management.Automation.ActionPreference". Specify one of the following '
                    f"enumerator names and try again: {', '.join(_ERROR_ACTIONS)}",
                    cmdlet.name,
                    self._source,
                    node.start,
                    node.end,
                    self._origin,
                )
            errorAction = errorAction.lower()
        return _Bound(
            cmdlet,
            node,
            arguments,
            whatIf=bool(common.get("WhatIf", False)),
            verbose=bool(common.get("Verbose", False)),
            errorAction=errorAction,
        )

    def _missingArgument(self, cmdlet, parameter, element):
        kind = "System.Object[]" if parameter.kind == "list" else "System.Object"
        if parameter.kind == "switch":
            kind = "System.Management.Automation.SwitchParameter"
        return ShellError(
            f"Missing an argument for parameter '{parameter.name}'. Specify a parameter of type '{kind}' and try again.",
            cmdlet.name,
            self._source,
            element.start,
            element.end,
            self._origin,
        )

    def _notFound(self, node):
        lower = node.name.lower()
        if lower == "exit":
            return self._exit(node)
        if lower in _KEYWORDS:
            message = (
                f"The exmta Shell does not run PowerShell's '{lower}' statement: "
                "it runs cmdlets, pipelines and variable assignments."
            )
        else:
            message = notRecognized(node.name)
            names = [cmdlet.name for cmdlet in self.cmdlets.values()]
            close = difflib.get_close_matches(
                node.name.lower(), [name.lower() for name in names], n=3, cutoff=0.75
            )
            if close:
                similar = [name for name in names if name.lower() in close]
                message += (
                    f"\nSuggestion: the most similar commands are: {', '.join(sorted(similar))}."
                )
        end = node.start + len(self._source[node.start : node.end].split(None, 1)[0] or "x")
        return ShellError(message, node.name, self._source, node.start, end, self._origin)

    def _exit(self, node):
        values = [
            self.evaluate(element)
            for element in node.elements
            if not isinstance(element, CommandParameter)
        ]
        if not values:
            return ExitRequest(1 if self.failed else 0)
        try:
            return ExitRequest(int(values[0]))
        except (TypeError, ValueError):
            return ShellError(
                f'Cannot convert value "{toText(values[0])}" to type "System.Int32".',
                "exit",
                self._source,
                node.start,
                node.end,
                self._origin,
            )


def _coerce(parameter, value, command):
    """
    @return: C{value} as C{parameter}'s kind takes it.
    @raise ShellError: for a switch given what is not a boolean.
    """
    if parameter.kind == "switch":
        if isinstance(value, (bool, int, float)) or value is None:
            return bool(value)
        raise ShellError(
            f"Cannot process argument transformation on parameter '{parameter.name}'. "
            f'Cannot convert the "{toText(value)}" value of type "{type(value).__name__}" to type '
            '"System.Management.Automation.SwitchParameter".',
            command,
        )
    if parameter.kind == "list":
        if value is None:
            return None
        if isinstance(value, (list, tuple)) and not hasattr(value, "_asdict"):
            return tuple(value)
        return (value,)
    return value


def _fromPipeline(parameter, item):
    """
    @return: C{(found, value)}: what a pipeline parameter binds from an
        object piped in.
    """
    lower = parameter.name.lower()
    if lower == "inputobject":
        return True, item
    if lower == "identity":
        if isScalar(item):
            return item is not None, item
        if any(hasProperty(item, name) for name in ("Identity", "Name")):
            return True, item
    for name in (parameter.name, *parameter.aliases):
        if not isScalar(item) and hasProperty(item, name):
            return True, getProperty(item, name)
    return False, None
