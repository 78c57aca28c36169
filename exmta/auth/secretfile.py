"""
Files that hold secrets: the BasicAuth account store
(L{exmta.auth.accounts}) and the send connectors' credential store
(L{exmta.auth.credentials}).

  - A secret file must not be open to group or others (mode 0600), as ssh
    insists for its keys; one that is is refused when read, with the
    C{chmod} that fixes it.
  - Writers replace the file atomically (a new private file, fsynced,
    renamed over the old one, the folder fsynced) while holding an
    exclusive lock on C{<path>.lock}, so readers never see half a file and
    concurrent writers never lose each other's change.

Every function blocks on the disk.
"""

import fcntl
import os
import secrets
import stat
from contextlib import contextmanager, suppress

from exmta.errors import ConfigError


def readPrivate(path, secret):
    """
    Read the secret file C{path}.

    @param secret: what the file holds, plural, for the refusal message
        (C{"password hashes"}, C{"passwords"}).
    @return: its text, or L{None} if it does not exist.
    @raise ConfigError: the file is open to group or others, cannot be
        read, or is not UTF-8.
    """
    try:
        with open(path, "rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o077:
                access = "readable" if mode & 0o044 else "writable"
                raise ConfigError(
                    f"is {access} by group or others (mode {mode:04o}); the "
                    f"{secret} must be private: run chmod 600 {path}",
                    path,
                )
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"is not UTF-8 text ({error.reason})", path) from None


def writePrivate(path, text):
    """
    Replace C{path} with C{text} atomically and durably, as a file only its
    owner may read.  Hold L{locked} around the read-modify-write.
    """
    folder = os.path.dirname(path)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}")
    # Created private: the secrets never sit in a file others may read.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # The rename itself is durable only once the folder is synced.
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def locked(path):
    """
    Hold the write lock of the secret file C{path}.  It is a separate file,
    C{<path>.lock}, because the file itself is replaced, not rewritten, on
    every change.
    """
    descriptor = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
