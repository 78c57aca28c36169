"""
C{exmta shell}: the Exchange Management Shell of an exmta organization.

    exmta shell [-c etc/org.ini]                       interactive, or the lines of standard input
    exmta shell [-c etc/org.ini] -Command '<statements>'
    exmta shell [-c etc/org.ini] [-File] script.ps1

Interactive, it keeps a history in C{~/.exmta_history} (mode 0600: lines
may hold secrets) and completes cmdlet names, parameter names and variables
with Tab.  A statement left open (a quote, a brace, a trailing C{|} or
backtick) continues on the next line, at a C{>>} prompt.

-Command runs its text (everything after it, as in PowerShell, so it may be
quoted or not); standard input stays free for the prompts of
C{Get-Credential} and C{Read-Host}.  A script file, or standard input when
it is not a terminal, runs statement after statement.  A statement that
fails prints its error, PowerShell-like, on standard error, and the next
runs; the exit status is then 1.  C{exit N} ends with status N.
"""

import os
import sys

from exmta.shell.host import Host
from exmta.shell.parser import DASHES, ShellSyntaxError, parse
from exmta.shell.runtime import ExitRequest, Session, loadCmdlets

USAGE = """\
usage: exmta shell [-c CONFIG] [-Command STATEMENTS... | [-File] SCRIPT]

The exmta Shell: Exchange Management Shell commands against an organization.

options:
  -c, --config CONFIG  the organization's configuration file (default: etc/org.ini)
  -Command ...         run these statements (the rest of the command line) and exit
  -File SCRIPT         run the statements of SCRIPT (- for standard input) and exit
  -h, --help           show this help and exit

Without -Command or a script, the Shell reads statements from standard input:
interactively on a terminal (Tab completes, Get-Help explains, exit leaves)."""

HISTORY = "~/.exmta_history"
PROMPT = "[PS] exmta> "
CONTINUATION = ">> "


class _Usage(Exception):
    pass


def parseArguments(argv):
    """
    @return: a dict: C{config}, C{command} (text or C{None}), C{file}
        (a path, C{"-"} or C{None}), C{help}.
    @raise _Usage: for arguments that make no sense.
    """
    options = {"config": "etc/org.ini", "command": None, "file": None, "help": False}
    index = 0
    while index < len(argv):
        argument = argv[index]
        lower = argument.lower()
        if argument in ("-c", "--config"):
            if index + 1 >= len(argv):
                raise _Usage(f"{argument} needs the configuration file's path")
            options["config"] = argv[index + 1]
            index += 2
        elif argument.startswith("--config="):
            options["config"] = argument.partition("=")[2]
            index += 1
        elif lower in ("-h", "--help", "-help", "-?", "/?"):
            options["help"] = True
            index += 1
        elif len(lower) >= 3 and "-command".startswith(lower):
            rest = argv[index + 1 :]
            if not rest:
                raise _Usage("-Command needs the statements to run")
            options["command"] = " ".join(rest)
            break
        elif len(lower) >= 2 and "-file".startswith(lower):
            if index + 1 >= len(argv):
                raise _Usage("-File needs the script's path")
            options["file"] = argv[index + 1]
            index += 2
        elif lower in ("-noprofile", "-nologo", "-noninteractive", "-nop", "-noni"):
            index += 1
        elif argument.startswith("-") and argument != "-":
            raise _Usage(f"unknown option {argument}")
        elif options["file"] is None:
            options["file"] = argument
            index += 1
        else:
            raise _Usage(f"unexpected argument {argument}")
    if options["command"] is not None and options["file"] is not None:
        raise _Usage("give -Command or a script, not both")
    return options


def main(argv=None, host=None):
    """
    @param argv: the arguments after C{exmta shell}.
    @return: the exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parseArguments(argv)
    except _Usage as error:
        sys.stderr.write(f"{USAGE.splitlines()[0]}\nexmta shell: error: {error}\n")
        return 2
    if options["help"]:
        print(USAGE)
        return 0
    loadCmdlets()
    host = Host() if host is None else host
    session = Session(options["config"], host)
    try:
        if options["command"] is not None:
            if options["command"].strip() == "-":
                runStream(session, host.stdin)
            else:
                session.run(options["command"])
        elif options["file"] not in (None, "-"):
            try:
                with open(options["file"], encoding="utf-8-sig") as script:
                    text = script.read()
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                host.writeError(f"exmta shell: {options['file']}: {reason}")
                return 1
            try:
                parsed = parse(text)
            except ShellSyntaxError as error:
                # As PowerShell does, a script that does not parse does not run at all.
                error.origin = options["file"]
                host.writeError(str(error))
                return 1
            session.run(parsed, origin=options["file"])
        elif options["file"] == "-" or not host.interactive:
            runStream(session, host.stdin)
        else:
            interact(session)
    except ExitRequest as request:
        return request.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped (| head): stop too, quietly, and
        # keep Python from failing to flush at exit.
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, sys.stdout.fileno())
        return 1
    return 1 if session.failed else 0


def runStream(session, stream):
    """
    Run the statements of a stream as they come, a statement at a time, so
    that a prompt in one (Get-Credential) reads the lines after it.
    """
    buffer = []
    firstLine = lineNumber = 1
    while True:
        line = stream.readline()
        if not line:
            break
        if not buffer:
            firstLine = lineNumber
        lineNumber += 1
        buffer.append(line.removesuffix("\n").removesuffix("\r"))
        text = "\n".join(buffer)
        if _incomplete(text):
            continue
        buffer = []
        session.run(text, firstLine=firstLine)
    if buffer:
        session.run("\n".join(buffer), firstLine=firstLine)


def _incomplete(text):
    try:
        parse(text)
    except ShellSyntaxError as error:
        return error.incomplete
    return False


def interact(session, input=input):
    """
    The interactive Shell: read, run, print, until C{exit} or end of input.
    """
    readline = _setUpReadline(session)
    session.host.write(
        f"exmta Shell on {session.configPath}. Get-Command lists the cmdlets, "
        "Get-Help NAME explains one, exit leaves."
    )
    try:
        buffer = []
        while True:
            try:
                line = input(CONTINUATION if buffer else PROMPT)
            except EOFError:
                session.host.write("")
                return
            except KeyboardInterrupt:
                session.host.write("")
                buffer = []
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            # An empty line ends a statement left open, as in PowerShell.
            if line.strip() and _incomplete(text):
                continue
            buffer = []
            if not text.strip():
                continue
            try:
                session.run(text)
            except KeyboardInterrupt:
                session.host.writeError("The statement was interrupted.")
    finally:
        if readline is not None:
            _saveHistory(readline)


def _historyPath():
    return os.path.expanduser(HISTORY)


def _setUpReadline(session):
    try:
        import readline
    except ImportError:  # pragma: no cover - Python built without readline
        return None
    path = _historyPath()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    readline.set_completer_delims(" \t\n;|(){}=,")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    matches = []

    def complete(text, state):
        if state == 0:
            line = readline.get_line_buffer()
            matches[:] = completions(session, line[: readline.get_begidx()], text)
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    return readline


def _saveHistory(readline):
    path = _historyPath()
    try:
        # The history may hold secrets (ConvertTo-SecureString 'P@ss'): 0600.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(descriptor)
        os.chmod(path, 0o600)
        readline.write_history_file(path)
    except OSError:
        pass


def completions(session, before, text):
    """
    What Tab completes C{text} to, C{before} being the line before it:
    cmdlet names where a command starts, the parameter names of the cmdlet
    being typed after a dash, variable names after a C{$}.
    """
    if text.startswith("$"):
        names = sorted(set(session.variables) | {"true", "false", "null"})
        return [f"${name}" for name in names if name.startswith(text[1:].lower())]
    segment = _lastCommand(before)
    words = segment.split()
    if not words:
        names = {cmdlet.name for cmdlet in session.cmdlets.values()}
        names |= {definition.name for definition, _, _ in session.functions.values()}
        names = sorted(names, key=str.lower)
        return [name for name in names if name.lower().startswith(text.lower())]
    if text[:1] and text[0] in DASHES:
        cmdlet = session.findCmdlet(words[0])
        if cmdlet is None:
            return []
        names = [parameter.name for parameter in session.parametersOf(cmdlet)]
        return [f"-{name}" for name in names if name.lower().startswith(text[1:].lower())]
    return []


def _lastCommand(before):
    """
    The text of the command being typed: after the last C{|}, C{;}, C{(}
    or C{{} outside quotes, or after C{$x =}.
    """
    start = 0
    quote = None
    for index, c in enumerate(before):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "|;({":
            start = index + 1
        elif c == "=" and before[start:index].strip().startswith("$"):
            start = index + 1
    return before[start:]
