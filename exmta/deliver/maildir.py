"""
Local delivery into Maildirs (U{https://cr.yp.to/proto/maildir.html}).

Each mailbox is a Maildir at C{<root>/<folder>/} (with C{cur/}, C{new/} and
C{tmp/}), where the folder is the mailbox's name for itself
(L{exmta.config.model.Mailbox.folder}, its primary SMTP address).  A copy
is written to C{tmp/} under a name unique to this host, fsynced, renamed
into C{new/}, and C{new/} is fsynced before the delivery counts: a
delivered message survives a crash as surely as a queued one.  Each copy
starts with C{Return-Path} and C{Delivered-To} header lines.
"""

import errno
import itertools
import os
import socket
import time

from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from exmta.errors import PermanentFailure, TransientFailure
from exmta.interfaces import IDeliveryAgent
from exmta.durable import makeFolders, syncFolder, unlinkQuietly, writeFile


def _failure(folder, error):
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return TransientFailure.of(452, "4.3.1", f"Insufficient system resources: {error.strerror}")
    return TransientFailure.of(
        451, "4.3.0", f"Maildir delivery to {folder} failed: {error.strerror or error}"
    )


@implementer(IDeliveryAgent)
class MaildirDeliveryAgent:
    """
    Delivers into Maildirs under one root folder, the TransportServer's
    C{MailboxDatabasePath}.  The writing runs in the reactor's thread pool.
    """

    name = "Maildir"

    def __init__(self, root, reactor, hostname=None):
        """
        @param hostname: the host part of unique file names; this host's
            name by default.
        """
        self.root = os.path.abspath(root)
        self.reactor = reactor
        hostname = hostname or socket.gethostname()
        # The Maildir spec's escapes: these characters have meanings in names.
        self.hostname = hostname.replace("/", "\\057").replace(":", "\\072")
        self._deliveries = itertools.count(1)
        self._made = set()

    def deliver(self, queued, mailboxes, message):
        """
        See L{IDeliveryAgent.deliver}.  Each distinct recipient address (case
        aside) gets one copy, even when several share a folder.
        """
        return deferToThreadPool(
            self.reactor,
            self.reactor.getThreadPool(),
            self._deliver,
            queued.mailFrom,
            dict(mailboxes),
            message,
        )

    def _deliver(self, sender, mailboxes, message):
        folders = {}
        for address, target in mailboxes.items():
            folder = getattr(target, "folder", target)
            folders.setdefault(folder, {}).setdefault(address.lower(), []).append(address)
        results = {}
        for folder, recipients in folders.items():
            results.update(self._deliverToFolder(folder, sender, recipients, message))
        return results

    def _deliverToFolder(self, folder, sender, recipients, message):
        """
        @param recipients: lower-cased address to the addresses, as given,
            that spell it.
        """
        everyone = [address for spellings in recipients.values() for address in spellings]
        if not folder or folder.startswith(".") or "/" in folder or "\0" in folder:
            refusal = PermanentFailure.of(
                550, "5.1.3", f"{folder!r} is not a usable mailbox folder name"
            )
            return dict.fromkeys(everyone, refusal)
        maildir = os.path.join(self.root, folder)
        try:
            self._makeMaildir(maildir)
        except OSError as error:
            return dict.fromkeys(everyone, _failure(folder, error))
        results = {}
        written = []
        for spellings in recipients.values():
            try:
                self._write(maildir, sender, spellings[0], message)
            except OSError as error:
                results.update(dict.fromkeys(spellings, _failure(folder, error)))
            else:
                written.extend(spellings)
        if written:
            try:
                syncFolder(os.path.join(maildir, "new"))
            except OSError as error:
                results.update(dict.fromkeys(written, _failure(folder, error)))
            else:
                results.update(dict.fromkeys(written))
        return results

    def _makeMaildir(self, maildir):
        if maildir in self._made:
            return
        for sub in ("cur", "new", "tmp"):
            makeFolders(os.path.join(maildir, sub))
        self._made.add(maildir)

    def _uniqueName(self):
        now = time.time()
        seconds = int(now)
        microseconds = int((now - seconds) * 1_000_000)
        return (
            f"{seconds}.M{microseconds}P{os.getpid()}Q{next(self._deliveries)}"
            f".{self.hostname}"
        )

    def _write(self, maildir, sender, recipient, message):
        name = self._uniqueName()
        temporary = os.path.join(maildir, "tmp", name)
        header = f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode("utf-8")
        try:
            writeFile(temporary, header, message)
            os.rename(temporary, os.path.join(maildir, "new", name))
        except OSError:
            unlinkQuietly(temporary)
            raise
