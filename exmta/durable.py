"""
Blocking file operations that survive a crash: each one is on disk when it
returns.  The queue and the Maildir agent run them in a thread; the queue's
go through a L{GroupCommitter}.  The secret stores and the org.ini editor
replace whole files with L{replaceFile} under L{locked}.
"""

import ctypes
import fcntl
import os
import queue
import secrets
import threading
from contextlib import contextmanager, suppress
from functools import partial

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


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


def writeFile(path, *chunks, sync=True):
    """
    Create C{path} (it must not exist), write C{chunks} to it and, unless
    told not to, fsync it.  Blocks.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(descriptor, view) :]
        if sync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replaceFile(path, data, keepModeAndOwner=False):
    """
    Replace C{path} with C{data} atomically and durably: a new file beside
    it, fsynced, renamed over it, the folder fsynced so that the rename
    itself survives a crash.  A reader or a crash sees the old file or the
    new one, never half of one.  Hold L{locked} around a read-modify-write.
    Blocks.

    @param keepModeAndOwner: the new file gets C{path}'s mode and, when
        this process may give it, its owner, as an editor keeps them;
        otherwise it is private to its writer (mode 0600).
    """
    folder = os.path.dirname(path)
    status = os.stat(path) if keepModeAndOwner else None
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}")
    # Created private: what it holds never sits in a file others may read.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if status is not None:
                os.fchmod(handle.fileno(), status.st_mode & 0o7777)
                if (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
                    with suppress(PermissionError):
                        os.fchown(handle.fileno(), status.st_uid, status.st_gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        unlinkQuietly(temporary)
        raise
    syncFolder(folder)


@contextmanager
def locked(path):
    """
    Hold the write lock of C{path}: an exclusive lock on C{<path>.lock}, a
    separate file because C{path} itself is replaced, not rewritten, on
    every change.  Blocks until it is free.
    """
    descriptor = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
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


class GroupCommitter:
    """
    Group commit for a folder's durable file work: concurrent writers
    share the flushes to disk.

    Each piece of work is submitted with up to three steps.  C{write}
    runs at once, on the caller's (the reactor's) thread, and writes the
    piece's files into a temporary folder without syncing them.  Pieces
    submitted while a batch is in flight wait; then, for the whole batch
    at once:

      1. one C{syncfs} of the folder's filesystem makes every file the
         batch wrote durable (an fsync per file where there is no
         C{syncfs}), in the committer's thread;
      2. each piece's C{publish} runs (the renames that make its files
         visible), on the reactor thread;
      3. one fsync of the folder makes the renames durable, in the thread;
      4. every piece's Deferred fires.

    So a Deferred fires only after its own files and the folder fsync that
    makes their renames durable.  The thread makes two system calls per
    batch and no file work: file work in a thread contends for the GIL
    with the busy reactor at every system call, which made small writes
    take milliseconds each.  Pieces are published in submission order,
    so two that touch the same file never race.

    C{syncfs} flushes everything written to that filesystem, other
    programs' files too: on a filesystem shared with heavy writers, each
    batch waits for their data as well, and two committers' batches on one
    filesystem wait for each other's.
    """

    def __init__(self, reactor, folder):
        """
        @param reactor: the L{twisted.internet.interfaces.IReactorThreads}
            whose thread submits work and hears the outcomes.
        @param folder: the folder fsynced once per batch.
        """
        self._reactor = reactor
        self._folder = folder
        self._files = Batch(folder)
        self._waiting = []
        self._inFlight = None
        self._request = None
        self._requests = queue.SimpleQueue()
        self._thread = None
        self._stopped = False

    def submit(self, write=None, publish=None, undo=None, synced=True):
        """
        Add a piece of work to the next batch.

        @param write: called at once with the L{Batch} the next batch
            syncs; its result is the Deferred's.  It must leave nothing
            behind if it raises.
        @param publish: called once the batch's files are durable.  It
            must leave nothing behind if it raises.
        @param undo: called, instead of reporting success, if a step of
            the batch after C{write} failed.
        @param synced: the outcome waits for the batch's folder fsync.  A
            removal, which the queue never needs durable, says L{False}:
            it fires once published.
        @return: a Deferred firing with C{write}'s result, or failing with
            the exception of the step that failed.
        """
        piece = _Piece(write, publish, undo, synced, Deferred())
        if write is not None:
            piece.run(write, self._files)
            if not piece.succeeded:
                _report([piece])
                return piece.deferred
        self._waiting.append(piece)
        if self._inFlight is None:
            self._startBatch()
        return piece.deferred

    def stop(self):
        """
        Finish the work submitted so far, on the calling thread, and end
        the committer's thread.  Blocks until it is done.
        """
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join()
            self._thread = None
        self._stopped = True
        request, self._request = self._request, None
        if request is not None:
            self._runNow(*request)

    def _startBatch(self):
        pieces, self._waiting = self._waiting, []
        files, self._files = self._files, Batch(self._folder)
        self._inFlight = pieces
        if files.written and any(piece.synced for piece in pieces):
            self._inThread(files.sync, self._dataSynced)
        else:
            self._dataSynced(None)

    def _dataSynced(self, failure):
        pieces = self._inFlight
        if failure is not None:
            _abandon([piece for piece in pieces if piece.succeeded and piece.synced], failure)
        for piece in pieces:
            if piece.publish is not None:
                piece.run(piece.publish)
        _report([piece for piece in pieces if not piece.synced])
        if any(piece.succeeded and piece.synced for piece in pieces):
            self._inThread(partial(syncFolder, self._folder), self._folderSynced)
        else:
            self._finishBatch()

    def _folderSynced(self, failure):
        if failure is not None:
            _abandon([piece for piece in self._inFlight if piece.succeeded and piece.synced], failure)
        self._finishBatch()

    def _finishBatch(self):
        pieces, self._inFlight = self._inFlight, None
        if self._waiting:
            self._startBatch()
        _report([piece for piece in pieces if piece.synced])

    def _inThread(self, function, then):
        """
        Run C{function} in the committer's thread, then C{then(failure)} on
        the reactor thread, C{failure} being L{None} if it succeeded.
        """
        if self._stopped:
            self._runNow(function, then)
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"group commit {self._folder}", daemon=True
            )
            self._thread.start()
        self._request = (function, then)
        self._requests.put(self._request)

    def _run(self):
        while (request := self._requests.get()) is not None:
            function, _ = request
            try:
                function()
            except BaseException:
                failure = Failure()
            else:
                failure = None
            self._reactor.callFromThread(self._done, request, failure)

    def _done(self, request, failure):
        # After stop, the work was finished on the stopping thread.
        if request is self._request:
            self._request = None
            request[1](failure)

    def _runNow(self, function, then):
        try:
            function()
        except BaseException:
            then(Failure())
        else:
            then(None)


class Batch:
    """
    The files written for one batch of a L{GroupCommitter}, made durable
    together.

    @ivar written: whether any file was written.
    """

    def __init__(self, folder):
        self._folder = folder
        self._paths = []
        self.written = False

    def writeFile(self, path, *chunks):
        """
        Like L{writeFile}, but the file is durable only once the batch is
        synced.
        """
        writeFile(path, *chunks, sync=False)
        self._paths.append(path)
        self.written = True

    def sync(self):
        """
        Make the files written so far durable.  Blocks.
        """
        if _syncfs is None:
            for path in self._paths:
                try:
                    descriptor = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # its piece failed, and removed it
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
            return
        descriptor = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _syncfs(descriptor) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), self._folder)
        finally:
            os.close(descriptor)


class _Piece:
    def __init__(self, write, publish, undo, synced, deferred):
        self.write = write
        self.publish = publish
        self.undo = undo
        self.synced = synced
        self.deferred = deferred
        self.succeeded = True
        self.result = None

    def run(self, step, *arguments):
        if not self.succeeded:
            return
        try:
            outcome = step(*arguments)
        except BaseException:
            self.succeeded, self.result = False, Failure()
        else:
            if step is self.write:
                self.result = outcome


def _abandon(pieces, failure):
    for piece in pieces:
        if piece.undo is not None:
            piece.undo()
        piece.succeeded, piece.result = False, failure


def _report(pieces):
    for piece in pieces:
        if piece.succeeded:
            piece.deferred.callback(piece.result)
        else:
            piece.deferred.errback(piece.result)


def _findSyncfs():
    """
    @return: Linux's syncfs(2), or L{None} where there is none.
    """
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_syncfs = _findSyncfs()
