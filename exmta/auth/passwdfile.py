"""
BasicAuth against a passwd-file of argon2 hashes, such as Dovecot's
C{passdb passwd-file}, so that SMTP AUTH and IMAP share one password per
user.  The C{PasswdFile} credential checker plugin
(L{exmta.plugins.exmta_passwdfile}) uses it.

The format is Dovecot's passwd-file (and htpasswd's)::

    # Comments start with '#'; blank lines are allowed.
    kim@fabrikam.com:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>
    lee@fabrikam.com:$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>::::::

  - One user a line: the user name, a colon, the password hash, and
    optionally more colon-separated fields (uid, gid, home...), which are
    ignored.
  - The user name must be a user principal name (C{name@domain}): it is
    the account a session logs in as, whose mailboxes it may send as.
  - The hash is an argon2 hash, as C{doveadm pw -s ARGON2ID} or
    argon2-cffi writes it, with or without Dovecot's C{{ARGON2ID}} or
    C{{ARGON2I}} prefix.  Other schemes are refused, naming the line.
  - The file must not be open to others; its group may read it (Dovecot
    reads it as its own group), unlike exmta's own account store.

exmta only reads the file.  Each login reads it again, so a user added or
removed counts at once.
"""

import os
import re
import stat

import argon2
from argon2.exceptions import InvalidHashError
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from zope.interface import implementer

from exmta.auth.accounts import checkUserPrincipalName
from exmta.auth.hashing import verifyPassword
from exmta.auth.checkers import verifyInThreadPool
from exmta.errors import ConfigError

_SCHEME = re.compile(r"\{([A-Za-z0-9._-]+)\}")
_ARGON2_SCHEMES = ("ARGON2ID", "ARGON2I")


def readPasswdFile(path):
    """
    Read and check a passwd-file.

    @return: a mapping of lower-case user principal name to argon2 hash.
    @raise ConfigError: the file cannot be read, is open to others, or has
        a line that is malformed, names a user twice, or holds a hash
        that is not argon2.
    """
    try:
        with open(path, "rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o007:
                raise ConfigError(
                    f"is open to others (mode {mode:04o}); password hashes must "
                    f"not be: run chmod o= {path}",
                    path,
                )
            data = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"is not UTF-8 text ({error.reason})", path) from None

    hashes, lines = {}, {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # The line is not quoted in errors: it holds a password hash.
        name, colon, rest = line.partition(":")
        try:
            name = checkUserPrincipalName(name.strip())
        except ValueError:
            raise ConfigError(
                "expected 'name@domain:<argon2 hash>[:...]'; the user name must "
                "be a user principal name",
                path,
                number,
            ) from None
        if not colon:
            raise ConfigError(f"{name} has no password hash", path, number)
        hashed = _argon2Hash(rest.split(":", 1)[0].strip(), name, path, number)
        if name in hashes:
            raise ConfigError(
                f"a second line for {name} (the first is line {lines[name]})", path, number
            )
        hashes[name], lines[name] = hashed, number
    return hashes


def _argon2Hash(field, name, path, number):
    scheme = _SCHEME.match(field)
    if scheme is not None:
        if scheme.group(1).upper() not in _ARGON2_SCHEMES:
            raise ConfigError(
                f"the password of {name} is a {scheme.group(1)} hash; exmta checks "
                "argon2 hashes only: set it with doveadm pw -s ARGON2ID",
                path,
                number,
            )
        field = field[scheme.end():]
    try:
        argon2.extract_parameters(field)
    except InvalidHashError:
        raise ConfigError(
            f"the password hash of {name} is not an argon2 hash; set it with "
            "doveadm pw -s ARGON2ID",
            path,
            number,
        ) from None
    return field


@implementer(ICredentialsChecker)
class PasswdFileChecker:
    """
    Checks user names and passwords against a passwd-file, in the
    process's verification pool (argon2 is slow on purpose).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, path, reactor):
        """
        @param path: the passwd-file, read at every login.
        """
        self.path = path
        self.reactor = reactor

    def requestAvatarId(self, credentials):
        """
        @return: a Deferred firing with the lower-case user principal name,
            or failing with L{UnauthorizedLogin}; with L{ConfigError} if
            the file has become unusable.
        """

        def verify(name, password):
            hashed = readPasswdFile(self.path).get(name)
            matches = verifyPassword(hashed, password)
            return None if hashed is None else matches

        return verifyInThreadPool(self.reactor, credentials, verify)
