"""
The C{exmta} command: check an organization's configuration, manage its
BasicAuth accounts and its send connectors' credentials, and open its
Exchange Management Shell.  Running a server is C{twistd exmta}.

    exmta check-config [-c etc/org.ini]
    exmta check-health [-c etc/org.ini] [--server NAME]
    exmta account set [-c etc/org.ini] USER@DOMAIN
    exmta account remove [-c etc/org.ini] USER@DOMAIN
    exmta account list [-c etc/org.ini]
    exmta credential set [-c etc/org.ini] NAME USERNAME
    exmta credential remove [-c etc/org.ini] NAME
    exmta credential list [-c etc/org.ini]
    exmta config export [-c etcd://127.0.0.1:2379/exmta/fabrikam] FILE
    exmta config import [-c etcd://127.0.0.1:2379/exmta/fabrikam] FILE
    exmta shell [-c etc/org.ini] [-Command '<statements>' | script.ps1]

C{-c} names org.ini's file or its etcd key (L{exmta.config.storage}).
C{config export} writes the organization's text to FILE (C{-} for standard
output) as stored; C{config import} validates FILE exactly as a server
would and stores it in place of what C{-c} names, for moving an
organization between a file and etcd.

C{account set} and C{credential set} read the password twice from the
terminal, or one line from standard input when that is not a terminal, so
scripts can pipe it in.  C{credential list} shows names and user names,
never passwords.  Errors are one line, C{exmta: <what and where>}, and exit
status 1.  C{exmta check-health} asks a running server's readiness
endpoint (its C{[Monitoring]} Binding, L{exmta.metrics.web}) and prints
what it says; it exits 0 when the server is ready, 1 when it is not or
cannot be reached.  C{exmta shell} is L{exmta.shell.main}: it reads its own
arguments, PowerShell's way (C{-Command}).
"""

import argparse
import getpass
import os
import sys

from exmta.auth.accounts import AccountStore, checkUserPrincipalName
from exmta.auth.credentials import CredentialStore, checkCredentials, checkUsername
from exmta.config import loadOrganization, storageFor
from exmta.config.storage import FileStorage
from exmta.config.values import credentialName
from exmta.durable import replaceFile
from exmta.errors import ConfigError


class _Refused(Exception):
    """
    What was asked cannot be done; the message says why.
    """


def checkConfig(arguments):
    organization = loadOrganization(arguments.config)
    # The account store is part of the configuration: a server refuses to
    # start on an unsafe one, so the check must too.
    accounts = AccountStore.open(organization.accountStorePath)
    # So are the send connectors' credentials: each AuthenticationCredential
    # must name one that exists.
    credentials = CredentialStore.open(organization.credentialStorePath)
    checkCredentials(organization, credentials)
    # And the plugins org.ini names must exist and take their settings.
    from twisted.internet import reactor

    from exmta.validation import checkPlugins

    checkPlugins(organization, reactor)
    counts = {
        "TransportServers": len(organization.transportServers),
        "ReceiveConnectors": len(organization.receiveConnectors),
        "SendConnectors": len(organization.sendConnectors),
        "AcceptedDomains": len(organization.acceptedDomains),
        "Mailboxes": len(organization.mailboxes),
        "accounts": len(accounts.names()),
        "credentials": len(credentials.names()),
    }
    summary = ", ".join(f"{what}: {count}" for what, count in counts.items())
    print(f"{organization.path}: OK ({summary})")


def exportConfig(arguments):
    storage = storageFor(arguments.config)
    text, _ = storage.read()
    if arguments.file == "-":
        sys.stdout.write(text)
        return
    replaceFile(os.path.abspath(arguments.file), text.encode("utf-8"))
    print(f"exported {storage.name} to {arguments.file}")


def importConfig(arguments):
    source = FileStorage(arguments.file)
    text, _ = source.read()
    source.organization(text)
    target = storageFor(arguments.config)
    target.organization(text)
    with target.writing():
        target.replace(text, None)
    print(f"imported {source.name} into {target.name}")


def checkHealth(arguments):
    import json
    import urllib.error
    import urllib.request

    from exmta.config.servers import chooseServer

    organization = loadOrganization(arguments.config)
    server = chooseServer(organization, arguments.server)
    monitoring = organization.monitorings.get(server.name)
    if monitoring is None:
        raise _Refused(
            f"TransportServer {server.name} serves no health endpoint; add a "
            f"[Monitoring {server.name}] section to {organization.path}"
        )
    host = monitoring.binding.host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    url = "http://{}:{}/health/ready".format(
        f"[{host}]" if ":" in host else host, monitoring.binding.port
    )
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            details = json.loads(response.read())
    except urllib.error.HTTPError as error:
        details = json.loads(error.read() or b"{}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise _Refused(f"{server.name} is not ready: cannot reach {url} ({reason})") from None
    ready = details.pop("ready", False)
    facts = ", ".join(f"{key}: {value}" for key, value in sorted(details.items()))
    if not ready:
        raise _Refused(f"{server.name} is not ready ({facts})")
    print(f"{server.name} is ready ({facts})")


def setAccount(arguments):
    try:
        name = checkUserPrincipalName(arguments.userPrincipalName)
    except ValueError as error:
        raise _Refused(str(error)) from None
    store = _accountStore(arguments)
    store.setPassword(name, _readPassword())
    print(f"set the password of {name} in {store.path}")


def removeAccount(arguments):
    name = arguments.userPrincipalName.lower()
    store = _accountStore(arguments)
    try:
        store.remove(name)
    except KeyError:
        raise _Refused(f"no account {name} in {store.path}") from None
    print(f"removed {name} from {store.path}")


def listAccounts(arguments):
    for name in _accountStore(arguments).names():
        print(name)


def setCredential(arguments):
    try:
        name = credentialName(arguments.name)
        username = checkUsername(arguments.username)
    except ValueError as error:
        raise _Refused(str(error)) from None
    store = _credentialStore(arguments)
    store.set(name, username, _readPassword())
    print(f"set the credential {name} (user name {username}) in {store.path}")


def removeCredential(arguments):
    store = _credentialStore(arguments)
    try:
        store.remove(arguments.name)
    except KeyError:
        raise _Refused(f"no credential {arguments.name} in {store.path}") from None
    print(f"removed {arguments.name} from {store.path}")


def listCredentials(arguments):
    for name, username in _credentialStore(arguments).usernames():
        print(f"{name} {username}")


def _credentialStore(arguments):
    return CredentialStore.open(loadOrganization(arguments.config).credentialStorePath)


def _accountStore(arguments):
    return AccountStore.open(loadOrganization(arguments.config).accountStorePath)


def _readPassword():
    if sys.stdin.isatty():
        try:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password again: ") != password:
                raise _Refused("the passwords do not match")
        except EOFError:
            password = ""
    else:
        # The line end, LF or CRLF, is not part of the password; spaces are.
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise _Refused("refusing an empty password")
    return password


def _parser():
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "-c",
        "--config",
        default="etc/org.ini",
        help="the organization's configuration: org.ini's path or an etcd URL "
        "(default: %(default)s)",
    )
    parser = argparse.ArgumentParser(
        prog="exmta",
        description="Check an exmta organization and manage its BasicAuth accounts "
        "and its send connectors' credentials. Run a server with: twistd exmta",
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check-config",
        parents=[config],
        help="validate org.ini, the account store and the credential store",
    )
    check.set_defaults(run=checkConfig)
    health = commands.add_parser(
        "check-health",
        parents=[config],
        help="ask a running server whether it is ready (receive bindings listening, "
        "queue open, back pressure not High); exit status 1 if not",
    )
    health.add_argument("--server", help="the TransportServer (default: as twistd exmta chooses)")
    health.set_defaults(run=checkHealth)

    configuration = commands.add_parser(
        "config", help="move an organization's configuration between a file and etcd"
    )
    actions = configuration.add_subparsers(metavar="ACTION", required=True)
    command = actions.add_parser(
        "export", parents=[config], help="write the configuration -c names to FILE"
    )
    command.add_argument("file", metavar="FILE", help="where to write it; - for standard output")
    command.set_defaults(run=exportConfig)
    command = actions.add_parser(
        "import", parents=[config], help="validate FILE and store it where -c names"
    )
    command.add_argument("file", metavar="FILE", help="an org.ini")
    command.set_defaults(run=importConfig)

    account = commands.add_parser("account", help="manage BasicAuth accounts")
    actions = account.add_subparsers(metavar="ACTION", required=True)
    for action, run, summary in [
        ("set", setAccount, "create an account or change its password"),
        ("remove", removeAccount, "delete an account"),
    ]:
        command = actions.add_parser(action, parents=[config], help=summary)
        command.add_argument("userPrincipalName", metavar="USER@DOMAIN")
        command.set_defaults(run=run)
    actions.add_parser(
        "list", parents=[config], help="list the accounts' user principal names"
    ).set_defaults(run=listAccounts)

    credential = commands.add_parser(
        "credential",
        help="manage the user names and passwords send connectors log on to "
        "smart hosts with (AuthenticationCredential)",
    )
    actions = credential.add_subparsers(metavar="ACTION", required=True)
    command = actions.add_parser(
        "set", parents=[config], help="create a credential or change it"
    )
    command.add_argument("name", metavar="NAME", help="the AuthenticationCredential name")
    command.add_argument("username", metavar="USERNAME", help="the smart host's user name")
    command.set_defaults(run=setCredential)
    command = actions.add_parser("remove", parents=[config], help="delete a credential")
    command.add_argument("name", metavar="NAME")
    command.set_defaults(run=removeCredential)
    actions.add_parser(
        "list", parents=[config], help="list the credentials' names and user names"
    ).set_defaults(run=listCredentials)

    # Listed for --help only: main() hands "shell" and what follows it to
    # exmta.shell.main, since -Command is not an option argparse can read
    # next to -c.
    commands.add_parser(
        "shell",
        add_help=False,
        help="the Exchange Management Shell: run New-SendConnector, Get-Queue... "
        "interactively, with -Command '...', or from a script (exmta shell -h)",
    )
    return parser


def main(argv=None):
    """
    @param argv: the arguments, without the program name; L{sys.argv} by default.
    @return: the exit status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["shell"]:
        from exmta.shell.main import main as shell

        return shell(argv[1:])
    arguments = _parser().parse_args(argv)
    try:
        arguments.run(arguments)
    except (ConfigError, _Refused) as error:
        return _fail(error)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror}")
    except KeyboardInterrupt:
        return 130
    return 0


def _fail(message):
    sys.stderr.write(f"exmta: {message}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
