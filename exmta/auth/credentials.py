"""
The credential store: the user names and passwords send connectors log on
to smart hosts with (SmartHostAuthMechanism BasicAuth, Exchange's
C{-AuthenticationCredential $mycred}).  org.ini names a credential
(C{AuthenticationCredential = ToInternetGateway}); the secret itself lives
in the file C{credentials} next to org.ini (L{Organization.credentialStorePath
<exmta.config.model.Organization.credentialStorePath>}).

The file format, like Postfix's sasl_passwd::

    # Comments start with '#'; blank lines are allowed.
    ToInternetGateway:smtpgateway@fabrikam.com:R2F0ZXdheS1QYTU1

  - UTF-8 text, one credential a line: its name, a colon, the user name, a
    colon, and the password's UTF-8 bytes in base64 (RFC 4648, with
    padding).
  - A name is letters, digits and C{. _ @ + -} (L{exmta.config.values.credentialName}),
    matched case-insensitively.  The user name may hold any character but
    line breaks and other control characters, colons included: it is what
    lies between the first and the last colon.
  - Base64 is not encryption: it keeps any password on one line and out of
    casual sight.  The password must be sent as it is, so it cannot be
    hashed; what protects it is the file's mode.  It must not be open to
    group or others (mode 0600), or it is refused, with the chmod that fixes
    it.  Writers replace it atomically under a lock, keeping comments and the
    order of lines (L{exmta.auth.secretfile}).

Passwords never appear in errors, logs, reprs or the output of C{exmta
credential list}.  Every read goes back to the file, so a credential set
with C{exmta credential set} counts at the next connection, without a
restart.
"""

import base64
import binascii
import os
import re
from typing import NamedTuple

from exmta import durable
from exmta.auth import secretfile
from exmta.config.values import credentialName
from exmta.errors import ConfigError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Credential(NamedTuple):
    """
    A user name and password for AUTH PLAIN or LOGIN.  It unpacks and
    compares as the tuple C{(username, password)}; its repr hides the
    password, so logging one by mistake leaks nothing.
    """

    username: str
    password: str

    def __repr__(self):
        return f"Credential(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__


def checkUsername(username):
    """
    @return: C{username}.
    @raise ValueError: it is empty, has white space at either end, or holds a
        control character.
    """
    if not username:
        raise ValueError("the user name is empty")
    if username != username.strip() or _CONTROL.search(username):
        raise ValueError(
            f"{username!r} is not a user name: no spaces at either end and no "
            "control characters"
        )
    return username


class CredentialStore:
    """
    The credentials in one file; see the module docstring for its format.
    Every method blocks on the disk (briefly: the file is small).

    @ivar path: the file.
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)

    @classmethod
    def open(cls, path):
        """
        Open the store in C{path}, checking the file now so that a server
        refuses to start on one that is unsafe or broken.  A missing file is
        an empty store; the first write creates it.

        @raise ConfigError: the file is readable by group or others, cannot be
            read, or has a malformed line.
        """
        store = cls(path)
        store._read()
        return store

    def get(self, name):
        """
        @return: the L{Credential} C{(username, password)} named C{name}.
        @raise KeyError: there is none.
        @raise ConfigError: the file has become unsafe or broken.
        """
        for entry, line in self._read():
            if entry is not None and entry.lower() == name.lower():
                _, username, password = _split(line)
                return Credential(username, base64.b64decode(password).decode("utf-8"))
        raise KeyError(name)

    def set(self, name, username, password):
        """
        Create the credential C{name}, or replace its user name and
        password, durably.

        @raise ValueError: the name, user name or password is not acceptable
            (the password must not be empty).
        """
        name = credentialName(name)
        checkUsername(username)
        if not isinstance(password, str) or not password:
            raise ValueError("the password is empty")
        encoded = base64.b64encode(password.encode("utf-8")).decode("ascii")
        line = f"{name}:{username}:{encoded}"
        with durable.locked(self.path):
            lines = self._read()
            for index, (entry, _) in enumerate(lines):
                if entry is not None and entry.lower() == name.lower():
                    lines[index] = (name, line)
                    break
            else:
                lines.append((name, line))
            self._write(lines)

    def remove(self, name):
        """
        Delete the credential C{name}.

        @raise KeyError: there is none.
        """
        with durable.locked(self.path):
            lines = self._read()
            kept = [
                (entry, line)
                for entry, line in lines
                if entry is None or entry.lower() != name.lower()
            ]
            if len(kept) == len(lines):
                raise KeyError(name)
            self._write(kept)

    def names(self):
        """
        @return: the credentials' names, sorted case-insensitively.
        """
        return [name for name, _ in self.usernames()]

    def usernames(self):
        """
        @return: C{(name, username)} pairs, sorted by name case-insensitively;
            no passwords.
        """
        pairs = [(entry, _split(line)[1]) for entry, line in self._read() if entry]
        return sorted(pairs, key=lambda pair: (pair[0].lower(), pair[0]))

    def __contains__(self, name):
        return any(entry.lower() == name.lower() for entry in self.names())

    def __repr__(self):
        return f"CredentialStore({self.path!r})"

    def _read(self):
        """
        @return: the file's lines as (name, line) pairs, the name L{None}
            for comments and blank lines; an empty list if there is no file.
        @raise ConfigError: see L{open}.
        """

        def entry(raw, number):
            stripped = raw.strip()
            # Errors never quote the line: it holds a password.
            parts = _split(stripped)
            if parts is None:
                raise ConfigError(
                    "expected 'name:username:base64 password'", self.path, number
                )
            name, username, password = parts
            try:
                credentialName(name)
            except ValueError:
                raise ConfigError(
                    "expected 'name:username:base64 password'; the name is "
                    "letters, digits and . _ @ + -",
                    self.path,
                    number,
                ) from None
            try:
                checkUsername(username)
                base64.b64decode(password, validate=True).decode("utf-8")
                if not password:
                    raise ValueError("empty")
            except (ValueError, binascii.Error):
                raise ConfigError(
                    f"the user name or password of {name} is malformed; set it "
                    f"again with: exmta credential set {name} USERNAME",
                    self.path,
                    number,
                ) from None
            return name, stripped

        return secretfile.readEntries(self.path, "passwords", entry)

    def _write(self, lines):
        durable.replaceFile(self.path, "".join(line + "\n" for _, line in lines).encode("utf-8"))


def _split(line):
    """
    @return: C{(name, username, base64 password)} of a credential line, or
        L{None} if it has fewer than two colons.
    """
    name, colon, rest = line.partition(":")
    username, colon2, password = rest.rpartition(":")
    if not colon or not colon2:
        return None
    return name, username, password


def missingCredentials(organization, store):
    """
    @return: the send connectors of C{organization} whose
        AuthenticationCredential is not in C{store}, in file order.
        Disabled connectors count too: enabling one must not break a start.
    """
    names = {name.lower() for name in store.names()}
    return tuple(
        connector
        for connector in organization.sendConnectors
        if connector.authenticationCredential is not None
        and connector.authenticationCredential.lower() not in names
    )


def checkCredentials(organization, store):
    """
    Check that every send connector's AuthenticationCredential is in
    C{store}, as a server must before it starts.

    @raise ConfigError: pointing at the first connector's
        AuthenticationCredential line in org.ini, saying how to add it.
    """
    for connector in missingCredentials(organization, store):
        name = connector.authenticationCredential
        raise connector.origin.error(
            f"no credential named {name!r} in {store.path}; add it with: "
            f"exmta credential set -c {organization.path} {name} USERNAME",
            "AuthenticationCredential",
        )
