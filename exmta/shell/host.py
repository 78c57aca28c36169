"""
The Shell's host: where it prints and how it asks.

Output goes to standard output; errors, warnings and verbose messages to
standard error, PowerShell's words first (C{WARNING: }, C{VERBOSE: }).

Prompts (C{Get-Credential}, C{Read-Host}) ask on the terminal when standard
input is one, without echoing passwords (L{getpass}).  When it is not a
terminal, a prompt reads the next line of standard input, without printing
anything: C{printf 'user\\npass\\n' | exmta shell -Command '$c =
Get-Credential; ...'} answers Get-Credential's user name and password.
"""

import getpass
import shutil
import sys

from exmta.shell.cmdlet import PSCredential


class EndOfInput(EOFError):
    """
    A prompt found the end of standard input.
    """


class Host:
    """
    The Shell's host on the process's standard streams (or others, for
    tests).
    """

    def __init__(self, stdin=None, stdout=None, stderr=None):
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr

    @property
    def interactive(self):
        """
        Whether standard input is a terminal, where prompts are shown.
        """
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def width(self):
        """
        The terminal's width when output goes to one (tables narrow to it),
        else C{None}.
        """
        try:
            if self.stdout.isatty():
                return shutil.get_terminal_size().columns
        except (AttributeError, ValueError, OSError):
            pass
        return None

    def write(self, text):
        """
        Print C{text} as one or more lines of output.
        """
        self._print(self.stdout, text)

    def writeError(self, text):
        self._print(self.stderr, text)

    def writeWarning(self, text):
        self._print(self.stderr, f"WARNING: {text}")

    def writeVerbose(self, text):
        self._print(self.stderr, f"VERBOSE: {text}")

    def _print(self, stream, text):
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.flush()

    def readLine(self, prompt=""):
        """
        @return: a line typed at C{prompt}, or the next line of standard
            input (without its end, LF or CRLF) when it is not a terminal.
        @raise EndOfInput: at the end of standard input.
        """
        if self.interactive and prompt:
            self.stderr.write(prompt)
            self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            raise EndOfInput()
        return line.removesuffix("\n").removesuffix("\r")

    def readSecret(self, prompt=""):
        """
        Like L{readLine}, without echoing what is typed on a terminal.
        """
        if self.interactive:
            try:
                return getpass.getpass(prompt or "Password: ", stream=self.stderr)
            except EOFError:
                raise EndOfInput() from None
        return self.readLine()

    def promptForCredential(self, caption, message, userName=None):
        """
        Ask for a user name (unless given) and a password.

        @return: a L{PSCredential}.
        """
        if self.interactive:
            self.stderr.write(f"\n{caption}\n{message}\n")
            self.stderr.flush()
        if userName is None:
            userName = self.readLine("User: ")
        password = self.readSecret(f"Password for user {userName}: ")
        return PSCredential(userName, password)


class MemoryHost(Host):
    """
    A host for tests and embedding: answers prompts from C{lines}, keeps
    what is printed in L{output} and L{errors}.
    """

    def __init__(self, lines=()):
        self.lines = list(lines)
        self.output = []
        self.errors = []

    interactive = False
    width = None

    def write(self, text):
        self.output.append(text)

    def writeError(self, text):
        self.errors.append(text)

    def writeWarning(self, text):
        self.errors.append(f"WARNING: {text}")

    def writeVerbose(self, text):
        self.errors.append(f"VERBOSE: {text}")

    def readLine(self, prompt=""):
        if not self.lines:
            raise EndOfInput()
        return self.lines.pop(0)

    def readSecret(self, prompt=""):
        return self.readLine(prompt)
