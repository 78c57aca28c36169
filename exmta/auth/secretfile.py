"""
Files that hold secrets: the BasicAuth account store
(L{exmta.auth.accounts}) and the send connectors' credential store
(L{exmta.auth.credentials}).

  - A secret file must not be open to group or others (mode 0600), as ssh
    insists for its keys; one that is is refused when read, with the
    C{chmod} that fixes it.
  - A store holds one entry a line, named by its first field; blank
    lines and C{#} comments are kept as written (L{readEntries}).
  - Writers replace the file atomically with a new private file
    (L{exmta.durable.replaceFile}) while holding its write lock
    (L{exmta.durable.locked}), so readers never see half a file and
    concurrent writers never lose each other's change.

Every function blocks on the disk.
"""

import os
import stat

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


def readEntries(path, secret, entry):
    """
    Read the secret store C{path}, one entry a line.

    @param secret: as for L{readPrivate}.
    @param entry: called with each line that is neither blank nor a
        comment, and its number; returns the entry's name and the line to
        keep, or raises L{ConfigError}.  Its errors must not quote the
        line: it holds a secret.
    @return: the file's lines as a list of (name, line) pairs, the name
        L{None} for comments and blank lines (kept as written); an empty
        list if the file does not exist.
    @raise ConfigError: see L{readPrivate}; a line C{entry} refused; a
        second line for one name (compared without regard to case).
    """
    text = readPrivate(path, secret)
    if text is None:
        return []
    lines = []
    seen = {}
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            lines.append((None, raw))
            continue
        name, kept = entry(raw, number)
        if name.lower() in seen:
            raise ConfigError(
                f"a second line for {name} (the first is line {seen[name.lower()]})",
                path,
                number,
            )
        seen[name.lower()] = number
        lines.append((name, kept))
    return lines
