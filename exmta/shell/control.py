"""
The errors of a running Shell and the requests that leave statements
early (C{exit}, C{return}, C{break}, C{continue}), and the error record a
C{catch} block sees as C{$_}.

PowerShell has two kinds of error, and the Shell keeps both:

  - A terminating error (a command that does not exist, a parameter that
    cannot be bound, C{throw}, a failing expression, a cmdlet's error with
    C{-ErrorAction Stop}) ends the statement; C{try} catches it.
  - A non-terminating error (what a cmdlet reports about what it was asked
    to do: a connector that is not found) is shown, sets C{$?} to
    C{$false}, and the script goes on, inside C{try} too, unless
    C{-ErrorAction Stop} (or C{$ErrorActionPreference = 'Stop'}) makes it
    terminating.
"""

import os
import traceback

from exmta.errors import ConfigError
from exmta.opath import FilterError
from exmta.opath.syntax import PowerShellSyntaxError, where
from exmta.shell.cmdlet import CmdletError
from exmta.shell.host import EndOfInput


class ShellError(Exception):
    """
    A statement failed.

    @ivar message: what went wrong (PowerShell's words where it has some).
    @ivar command: the name of the command at fault, or C{None}.
    @ivar thrown: the value C{throw} threw, or C{None}.
    @ivar scriptTerminating: whether it leaves every block up to a C{try}
        or the script's statement (C{throw}, C{-ErrorAction Stop}), not
        only its own statement.
    """

    def __init__(self, message, command=None, source=None, start=None, end=None, origin=None):
        super().__init__(message)
        self.message = message
        self.command = command
        self.source = source
        self.start = start
        self.end = end
        self.origin = origin
        self.thrown = None
        self.scriptTerminating = False

    def locate(self, source, start, end, origin=None):
        """
        Say where the error is, unless it already says.
        """
        if self.source is None:
            self.source, self.start, self.end, self.origin = source, start, end, origin
        return self

    def __str__(self):
        text = f"{self.command} : {self.message}" if self.command else self.message
        if self.source is not None:
            text += "\n" + where(self.source, self.start, self.end - self.start, self.origin)
        return text


class ExitRequest(Exception):
    """
    C{exit} was run: the Shell ends with C{status}.
    """

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class FlowRequest(Exception):
    """
    C{return} (with the value returned), C{break} or C{continue}, on its way
    to the function or loop it leaves.
    """

    def __init__(self, keyword, node):
        super().__init__(keyword)
        self.keyword = keyword
        self.node = node


class ExceptionInfo:
    """
    What C{$_.Exception} is in a C{catch} block.
    """

    def __init__(self, message, typeName):
        self.Message = message
        self._typeName = typeName

    def GetType(self):
        return _TypeName(self._typeName)

    def __str__(self):
        return self.Message


class _TypeName:
    def __init__(self, name):
        self.FullName = name
        self.Name = name.rsplit(".", 1)[-1]

    def __str__(self):
        return self.FullName


class ErrorRecord:
    """
    An error as C{catch} blocks see it in C{$_}: C{$_.Exception.Message},
    C{"$_"} (the message), C{$_.TargetObject} (what C{throw} threw).
    """

    def __init__(self, error):
        self.Exception = ExceptionInfo(error.message, _exceptionType(error))
        self.TargetObject = error.thrown
        self.FullyQualifiedErrorId = error.message if error.thrown is not None else (
            self.Exception.GetType().Name
        )
        self.InvocationInfo = None
        self.error = error

    def __str__(self):
        return self.Exception.Message


def _exceptionType(error):
    if error.thrown is not None:
        return "System.Management.Automation.RuntimeException"
    if error.message.startswith("The term '"):
        return "System.Management.Automation.CommandNotFoundException"
    if error.message.startswith(("A parameter cannot be found", "Cannot bind", "Missing an argument")):
        return "System.Management.Automation.ParameterBindingException"
    if error.command:
        return "Microsoft.Exchange.Configuration.Tasks.TaskException"
    return "System.Management.Automation.RuntimeException"


def notRecognized(name):
    """
    PowerShell's message for a command it does not have.
    """
    return (
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or "
        "operable program. Check the spelling of the name, or if a path was included, verify that "
        "the path is correct and try again."
    )


def describe(error):
    """
    The message of an exception raised by a cmdlet, without a traceback.
    """
    if isinstance(error, (CmdletError, ConfigError, FilterError)):
        return str(error)
    if isinstance(error, PowerShellSyntaxError):
        return str(error)
    if isinstance(error, EndOfInput):
        return "The end of standard input was reached before the answer."
    if isinstance(error, OSError):
        at = f"{error.filename}: " if error.filename else ""
        return f"{at}{error.strerror or error}"
    if os.environ.get("EXMTA_SHELL_TRACEBACK"):
        traceback.print_exception(error)
    return (
        f"{type(error).__name__}: {error} (an error in exmta; EXMTA_SHELL_TRACEBACK=1 shows where)"
    )
