"""
Blocking file operations that survive a crash: each one is on disk when it
returns.  The queue and the Maildir agent run them in a thread.
"""

import os


def makeFolders(path):
    """
    Create C{path} and any missing parents with mode 0700, each one durably
    (its parent fsynced), so a crash cannot lose a folder files were
    written into.  Blocks.
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    makeFolders(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    syncFolder(parent)


def syncFolder(path):
    """
    fsync a directory, making the renames and unlinks done in it durable.
    Blocks.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def writeFile(path, *chunks):
    """
    Create C{path} (it must not exist), write C{chunks} to it and fsync it.
    Blocks.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def unlinkQuietly(path):
    """
    Remove a file that may not exist, while cleaning up after a failure.
    A leftover is harmless (the next open removes it), so errors here must
    not hide the failure being handled.
    """
    try:
        os.unlink(path)
    except OSError:
        pass
