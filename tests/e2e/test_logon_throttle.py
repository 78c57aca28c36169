"""
Password guessing against a real C{twistd exmta} over real sockets, with
Exchange's default tarpit (5 s): guesses from many connections of one
address are counted together, also when the client hangs up without
waiting for the answer, until that address is refused 454 4.7.0 while
another address still logs in; guesses from many addresses lock the
account they aim at; and a password typed into the user name field never
reaches the server log.

Each guesser here hangs up right after its AUTH line, as a flood does to
skip the tarpit; the test waits for the server to log what became of the
guess before the next one: checked (failed, or abandoned during its check)
and counted, or dropped unchecked because both threads of the
verification pool were still busy with earlier guesses when its client
left.
"""

import base64

import pytest

from exmta.auth import throttle
from tests.e2e.harness import RawClient, ServerProcess, freePort, writeOrganization

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

[Mailbox Lee Gu]
PrimarySmtpAddress = lee@fabrikam.com
UserPrincipalName = lee@fabrikam.com

[ReceiveConnector Client HubA]
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = Tls, BasicAuth
PermissionGroups = ExchangeUsers
"""

PASSWORDS = {"kim@fabrikam.com": "Kim-Pa55word", "lee@fabrikam.com": "Lee-Pa55word"}


class Server:
    def __init__(self, folder):
        self.port = freePort()
        config = writeOrganization(
            folder, ORGANIZATION.format(port=self.port), accounts=PASSWORDS.items()
        )
        self.process = ServerProcess(config, sockets=1)
        self._logged = {}

    def client(self, source):
        client = RawClient("127.0.0.1", self.port, source=source)
        assert client.reply()[0] == 220
        assert client.command("EHLO client.fabrikam.com")[0] == 250
        return client

    def guessAndHangUp(self, source, user, password):
        """
        Send one AUTH PLAIN from C{source} and hang up at once; return once
        the server has logged what became of it.

        @return: whether the guess was checked (failed, or abandoned during
            its check); if the client left before its check could start,
            it was dropped unchecked.
        """
        client = self.client(source)
        client.send(f"AUTH PLAIN {plain(user, password)}\r\n".encode())
        client.close()
        where = f"from {source} on Client HubA"
        logged = self._logged[source] = self._logged.get(source, 0) + 1
        self.process.waitFor(where, count=logged)
        [line] = [line for line in self.process.output if where in line][logged - 1:logged]
        return "dropped login" not in line

    def guessUntilChecked(self, source, user, guesses):
        """
        Guess from C{source}, hanging up each time, until C{guesses} have
        been checked.
        """
        checked = 0
        while checked < guesses:
            checked += self.guessAndHangUp(source, user, f"guess-{checked}")

    def logIn(self, source, user, password):
        """
        @return: the reply lines to AUTH PLAIN from C{source}.
        """
        client = self.client(source)
        try:
            return client.command(f"AUTH PLAIN {plain(user, password)}")[1]
        finally:
            client.close()


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(str(tmp_path_factory.mktemp("throttle")))
    yield running
    running.process.stop()


def test_guessesOfClientsThatHangUpCountAcrossConnections(server):
    server.guessUntilChecked("127.0.0.2", "kim@fabrikam.com", throttle.SOURCE_LIMIT)
    # Even the right password: the address is refused without a check.
    [refusal] = server.logIn("127.0.0.2", "kim@fabrikam.com", PASSWORDS["kim@fabrikam.com"])
    assert refusal.startswith("454 4.7.0 "), refusal
    # One address cannot lock the account out for the others.
    assert server.logIn("127.0.0.3", "kim@fabrikam.com", PASSWORDS["kim@fabrikam.com"]) == [
        "235 2.7.0 Authentication successful"
    ]
    assert "refusing logons from 127.0.0.2" in server.process.drain()


def test_guessesFromManyAddressesLockTheirAccount(server):
    sources = [f"127.0.1.{number}" for number in range(1, 5)]
    shares = [7, 7, throttle.ACCOUNT_LIMIT - 14]
    assert max(shares) < throttle.SOURCE_LIMIT
    for source, share in zip(sources, shares):
        server.guessUntilChecked(source, "lee@fabrikam.com", share)
    [refusal] = server.logIn(sources[3], "lee@fabrikam.com", PASSWORDS["lee@fabrikam.com"])
    assert refusal.startswith("454 4.7.0 "), refusal
    assert server.logIn(sources[3], "kim@fabrikam.com", PASSWORDS["kim@fabrikam.com"]) == [
        "235 2.7.0 Authentication successful"
    ]
    # Guesses abandoned during their check do not say whether the name is
    # an account's: it is not logged.
    assert "refusing logons for a user name" in server.process.drain()


def test_aPasswordTypedAsTheUserNameIsNotLogged(server):
    server.guessAndHangUp("127.0.2.1", "Tr0ub4dor&3-typed-here", "kim@fabrikam.com")
    # Waiting out the tarpit for the answer: the check ends with the
    # client there, and the account's name is logged (the administrator
    # needs it).
    assert server.logIn("127.0.2.1", "kim@fabrikam.com", "Tr0ub4dor&4-wrong") == [
        "535 5.7.3 Authentication unsuccessful"
    ]
    log = server.process.drain()
    assert "Tr0ub4dor" not in log
    assert "failed login 1 for kim@fabrikam.com from 127.0.2.1" in log
