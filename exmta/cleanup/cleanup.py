"""
L{Cleanup}: the end of DATA, from the client's bytes to the queued message
and the reply the client hears.
"""

import errno
import os
from email.utils import getaddresses

from zope.interface import implementer

from exmta import serverlog
from exmta.agents import ACCEPT, CONTINUE, DISCONNECT, AgentEvent
from exmta.auth import permissions
from exmta.cleanup.headers import (
    authenticationHeaders,
    firewall,
    hopCount,
    localHopCount,
    receivedHeader,
)
from exmta.envelope import Address, Reply
from exmta.errors import INSUFFICIENT_RESOURCES, Disconnect
from exmta.interfaces import ICleanup
from exmta.message.header import fieldName, fields, headerEnd, messageId, subject

HEADER_TOO_BIG = Reply(552, "5.3.4", "Header size exceeds fixed maximum size")
HOP_COUNT_EXCEEDED = Reply(554, "5.4.6", "Hop count exceeded - possible mail loop")
CANNOT_SEND_AS = Reply(550, "5.7.1", "Client does not have permissions to send as this sender")
QUEUE_ERROR = Reply(451, "4.3.0", "Error in processing; try again later")

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_DISK_ERRORS = _FULL | {errno.EIO, errno.EROFS}


@implementer(ICleanup)
class Cleanup:
    """
    The cleanup stage of one receive configuration: a reload makes a new
    one, and each session keeps the one it started under.

    @ivar organization: the L{exmta.config.model.Organization}, whose
        accepted domains the From: check reads.
    @ivar queue: the L{exmta.interfaces.IMessageSubmission} messages go to.
    @ivar clock: gives the time written into C{Received:}.
    @ivar agents: the L{exmta.agents.AgentPipeline}, or L{None} when no
        agent is enabled.
    @ivar tracking: the L{exmta.interfaces.IMessageTrackingLog} that hears
        of each accepted message, or L{None}.
    """

    log = serverlog.logger()

    def __init__(self, organization, queue, clock, agents=None, tracking=None):
        self.organization = organization
        self.queue = queue
        self.clock = clock
        self.agents = agents
        self.tracking = tracking
        # Whose Received: fields are local hops (MaxLocalHopCount): the
        # organization's transport servers and receive connectors.
        self._localNames = frozenset(
            name.lower()
            for name in [s.fqdn for s in organization.transportServers.values()]
            + [c.fqdn for c in organization.receiveConnectors]
        )

    def endOfData(self, connector, session, envelope, message):
        end = headerEnd(message)
        header = message[:end]
        if len(header) > connector.maxHeaderSize:
            return HEADER_TOO_BIG
        if hopCount(header) >= connector.maxHopCount:
            return HOP_COUNT_EXCEEDED
        local = connector.maxLocalHopCount
        if local and localHopCount(header, self._localNames) >= local:
            return HOP_COUNT_EXCEEDED
        principal = session.principal
        if not self._mayWriteFrom(header, principal):
            return CANNOT_SEND_AS
        fqdn = connector.fqdn
        # One copy of the body, not two: it may be megabytes.
        stored = b"".join(
            (
                receivedHeader(session, fqdn, self.clock.seconds(), envelope.smtputf8),
                authenticationHeaders(principal, fqdn),
                firewall(header, principal.rights),
                memoryview(message)[end:],
            )
        )

        def endOfHeaders():
            return self._agentsThen(
                "OnEndOfData", enqueue, session=session, envelope=envelope, message=stored
            )

        def enqueue(message=stored):
            if not envelope.recipients:
                # Agents dropped every recipient the client was told 250
                # for: the message is taken, and goes nowhere.
                self.log.info(
                    "accepted and dropped a message from {sender} on {connector}: "
                    "transport agents removed all its recipients",
                    sender=str(envelope.mailFrom),
                    connector=connector.name,
                )
                return Reply(250, "2.6.0", "Queued mail for delivery")
            return self.queue.enqueue(envelope, session, message).addCallbacks(
                queued, self._notQueued, callbackArgs=(message,), errbackArgs=(connector,)
            )

        def queued(queueId, stored):
            sender = str(envelope.mailFrom)
            recipients = [str(r) for r in envelope.recipients]
            if self.tracking is not None:
                self.tracking.track(
                    "RECEIVE",
                    source="SMTP",
                    internalMessageId=queueId,
                    messageId=messageId(header),
                    messageSubject=subject(header),
                    sender=sender,
                    recipients=recipients,
                    totalBytes=len(stored),
                    connectorId=connector.identity,
                    clientIp=session.peerHost,
                    clientHostname=session.helo,
                    serverIp=session.localHost,
                )
            # The tracking log's RECEIVE is the record (exmta.serverlog).
            self.log.debug(
                "accepted {queueId} from {sender} for {recipients} on {connector} "
                "({size} bytes, {principal}, [{peerHost}]:{peerPort})",
                queueId=queueId,
                sender=sender,
                recipients=recipients,
                connector=connector.name,
                peerHost=session.peerHost,
                peerPort=session.peerPort,
                size=len(stored),
                principal=principal.name,
            )
            return Reply(250, "2.6.0", f"<{queueId}@{fqdn}> Queued mail for delivery")

        return self._agentsThen(
            "OnEndOfHeaders", endOfHeaders, session=session, envelope=envelope, header=header
        )

    def _notQueued(self, failure, connector):
        """
        A disk that is full, or failing, is the server's state, not a bug:
        the client hears 452 4.3.1 (full) or 451 4.3.0 and sends again;
        the queue has already removed what it had written of the message.
        """
        error = failure.check(OSError) and failure.value
        if not error or error.errno not in _DISK_ERRORS:
            return failure
        self.log.error(
            "cannot queue a message on {connector}: {error}",
            connector=connector.name,
            error=os.strerror(error.errno),
        )
        return INSUFFICIENT_RESOURCES if error.errno in _FULL else QUEUE_ERROR

    def _mayWriteFrom(self, header, principal):
        """
        Exchange's sender check (L{permissions.maySendAs}) on the addresses
        of the From: field, as Exchange makes it at the end of data.
        """
        if principal.has(permissions.ACCEPT_ANY_SENDER):
            return True
        values = [
            field.split(b":", 1)[1].decode("latin-1")
            for field in fields(header)
            if fieldName(field) == b"from"
        ]
        for _, address in getaddresses(values):
            local, at, domain = address.rpartition("@")
            if at and not permissions.maySendAs(
                self.organization, Address(local, domain.lower()), principal
            ):
                return False
        return True

    def _agentsThen(self, name, then, **about):
        """
        Ask the agents handling event C{name}, then answer with
        C{then(**changes)} unless one refused; without agents for the
        event C{then} runs at once and no event is built.
        """
        agents = self.agents
        if agents is None or not agents.wants(name):
            return then()
        return agents.run(AgentEvent(name, **about)).addCallback(_decided, then)


def _decided(verdict, then):
    if verdict.kind in (CONTINUE, ACCEPT):
        return then(**verdict.changes())
    if verdict.kind == DISCONNECT:
        raise Disconnect(verdict.reply)
    return verdict.reply
