"""
The BasicAuth account store: user principal names with argon2id password
hashes, in one file next to org.ini (L{Organization.accountStorePath
<exmta.config.model.Organization.accountStorePath>}).

The file format, like /etc/shadow::

    # Comments start with '#'; blank lines are allowed.
    smtpgateway@fabrikam.com:$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>

  - UTF-8 text, one account a line: the lower-case user principal name, a
    colon, and the hash string argon2-cffi's C{PasswordHasher} writes
    (with the parameters of L{exmta.auth.hashing}; older lines keep theirs
    until their password is set again).
  - A user principal name is C{name@domain} with no white space or colon.
  - The file must not be open to group or others (mode 0600), as ssh
    insists for its keys: a hash leaked is a password open to offline
    guessing.
  - Writers replace the file atomically (a new file, fsynced, renamed over
    the old one) while holding an exclusive lock on C{<path>.lock}, so
    readers never see half a file and concurrent writers never lose each
    other's change (L{exmta.auth.secretfile}).  Comments and the order of
    lines are kept.

Every read goes back to the file, so an account set or removed with
C{exmta account} counts at once, without restarting the server.
"""

import os
import re

import argon2
from argon2.exceptions import InvalidHashError
from zope.interface import implementer

from exmta import durable
from exmta.auth import secretfile
from exmta.auth.hashing import hashPassword, verifyPassword
from exmta.errors import ConfigError
from exmta.interfaces import IAccountStore

_USER_PRINCIPAL_NAME = re.compile(r"[^\s:@]+@[^\s:@]+")


def checkUserPrincipalName(name):
    """
    @return: C{name} lower-cased, as the store keeps it.
    @raise ValueError: if it is not C{name@domain}.  Requiring the C{@}
        also keeps account names apart from well-known principals such as
        C{NT AUTHORITY\\ANONYMOUS LOGON}.
    """
    lowered = name.lower()
    if not _USER_PRINCIPAL_NAME.fullmatch(lowered):
        raise ValueError(
            f"{name!r} is not a user principal name; write name@domain, "
            "without spaces or colons"
        )
    return lowered


@implementer(IAccountStore)
class AccountStore:
    """
    The accounts in one file; see the module docstring for its format.
    Every method blocks (on the disk, and on argon2 for L{verify} and
    L{setPassword}): call them from a thread in the server.

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

        @raise ConfigError: the file is readable by group or others, cannot
            be read, or has a malformed line.
        """
        store = cls(path)
        store._read()
        return store

    def verify(self, userPrincipalName, password):
        """
        @param password: L{str} or L{bytes}.
        @return: L{True} if the account exists and the password is right.
        @raise ConfigError: the file has become unsafe or broken.
        """
        return verifyPassword(self._accounts().get(userPrincipalName.lower()), password)

    def setPassword(self, userPrincipalName, password):
        """
        Create the account or change its password, durably.

        @raise ValueError: the name is not a user principal name, or the
            password is empty.
        """
        name = checkUserPrincipalName(userPrincipalName)
        if not password:
            raise ValueError("the password is empty")
        # Hash before taking the lock: it is the slow part.
        entry = f"{name}:{hashPassword(password)}"
        with self._locked():
            lines = self._read()
            for index, (account, _) in enumerate(lines):
                if account == name:
                    lines[index] = (name, entry)
                    break
            else:
                lines.append((name, entry))
            self._write(lines)

    def remove(self, userPrincipalName):
        """
        Delete the account.

        @raise KeyError: there is none.
        """
        name = userPrincipalName.lower()
        with self._locked():
            lines = self._read()
            kept = [(account, text) for account, text in lines if account != name]
            if len(kept) == len(lines):
                raise KeyError(name)
            self._write(kept)

    def names(self):
        """
        @return: the user principal names, sorted.
        """
        return sorted(self._accounts())

    def _accounts(self):
        """
        @return: a mapping of user principal name to hash string.
        """
        return {
            account: text.partition(":")[2].strip()
            for account, text in self._read()
            if account is not None
        }

    def _read(self):
        """
        @return: the file's lines as a list of (user principal name, line)
            pairs, the name L{None} for comments and blank lines; an empty
            list if the file does not exist.
        @raise ConfigError: see L{open}.
        """

        def entry(raw, number):
            line = raw.strip()
            # The line is not quoted in errors: it holds a password hash.
            name, colon, hashed = line.partition(":")
            name = name.strip().lower()
            if not colon or not _USER_PRINCIPAL_NAME.fullmatch(name):
                raise ConfigError(
                    "expected 'userprincipalname:<argon2 hash>'", self.path, number
                )
            try:
                argon2.extract_parameters(hashed.strip())
            except InvalidHashError:
                raise ConfigError(
                    f"the password hash of {name} is not an argon2 hash; set it "
                    f"again with: exmta account set {name}",
                    self.path,
                    number,
                ) from None
            return name, raw

        return secretfile.readEntries(self.path, "password hashes", entry)

    def _write(self, lines):
        """
        Replace the file with C{lines} atomically and durably.
        """
        durable.replaceFile(self.path, "".join(text + "\n" for _, text in lines).encode("utf-8"))

    def _locked(self):
        """
        Hold the store's write lock.
        """
        return durable.locked(self.path)
