"""
Blocking file operations that survive a crash: each one is on disk when it
returns.  The queue and the Maildir agent run them in a thread; the queue's
go through a L{GroupCommitter}.
"""

import ctypes
import os
import queue
import threading

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
    One thread that does a folder's durable file work in batches, so
    concurrent writers share the flushes to disk (group commit).

    Work submitted while a batch is being written waits; when the batch is
    done the thread takes everything waiting as the next batch and, for
    the whole batch at once:

      1. runs each piece's C{write(batch)}, which writes its files through
         L{Batch.writeFile};
      2. makes all those files durable with one C{syncfs} of the folder's
         filesystem (one fsync per file where there is no C{syncfs});
      3. runs each piece's C{publish()} (the renames that make the files
         visible);
      4. fsyncs the folder, making the renames durable;
      5. reports every outcome to the reactor in one call.

    So a Deferred fires only after its own files and the folder fsync that
    makes their renames durable, and the reactor thread pays one hand-off
    per batch.  Pieces run in submission order, one at a time: two that
    touch the same file never race.

    C{syncfs} flushes everything written to that filesystem, other
    programs' files too: on a filesystem shared with heavy writers, each
    batch waits for their data as well.
    """

    def __init__(self, reactor, folder):
        """
        @param reactor: the L{twisted.internet.interfaces.IReactorThreads}
            the outcomes are reported to.
        @param folder: the folder fsynced once per batch.
        """
        self._reactor = reactor
        self._folder = folder
        self._waiting = queue.SimpleQueue()
        self._thread = None

    def submit(self, write, publish=None, undo=None, synced=True):
        """
        Have the committer's thread run C{write} and C{publish} as part of
        its next batch.

        @param write: called with the L{Batch}; its result is the
            Deferred's.
        @param publish: called once the batch's files are durable.
        @param undo: called, instead of reporting success, if C{write}
            succeeded but a later step of the batch failed.
        @param synced: the outcome waits for the batch's folder fsync.  A
            removal, which the queue never needs durable, says L{False}.
        @return: a Deferred firing with C{write}'s result, or failing with
            the exception of the step that failed.
        """
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"group commit {self._folder}", daemon=True
            )
            self._thread.start()
        deferred = Deferred()
        self._waiting.put(_Piece(write, publish, undo, synced, deferred))
        return deferred

    def stop(self):
        """
        Finish the work submitted so far and end the thread.  Blocks until
        it has; the outcomes are still reported to the reactor.
        """
        if self._thread is not None:
            self._waiting.put(None)
            self._thread.join()
            self._thread = None

    def _run(self):
        stopping = False
        while not stopping:
            pieces = [self._waiting.get()]
            while not self._waiting.empty():
                pieces.append(self._waiting.get())
            if None in pieces:
                stopping = True
                pieces = [piece for piece in pieces if piece is not None]
            if pieces:
                self._commit(pieces)
                self._reactor.callFromThread(_report, pieces)

    def _commit(self, pieces):
        batch = Batch(self._folder)
        for piece in pieces:
            piece.run(piece.write, batch)
        waiting = [piece for piece in pieces if piece.succeeded and piece.synced]
        if not waiting:
            return
        try:
            batch.sync()
        except BaseException:
            _abandon(waiting, Failure())
            return
        for piece in waiting:
            if piece.publish is not None:
                piece.run(piece.publish)
        waiting = [piece for piece in waiting if piece.succeeded]
        if waiting:
            try:
                syncFolder(self._folder)
            except BaseException:
                _abandon(waiting, Failure())


class Batch:
    """
    The files written by one batch of a L{GroupCommitter}, made durable
    together.
    """

    def __init__(self, folder):
        self._folder = folder
        self._unsynced = False

    def writeFile(self, path, *chunks):
        """
        Like L{writeFile}, but the file is durable only once the batch is
        synced.
        """
        writeFile(path, *chunks, sync=_syncfs is None)
        self._unsynced = True

    def sync(self):
        """
        Make the files written so far durable.
        """
        if self._unsynced and _syncfs is not None:
            descriptor = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _syncfs(descriptor) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, os.strerror(error), self._folder)
            finally:
                os.close(descriptor)
        self._unsynced = False


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
