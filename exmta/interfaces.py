"""
Every interface of exmta: the map of the system.

The pipeline is receive -> permissions -> queue -> routing -> delivery.

  - The receive protocol (L{exmta.receive}) logs each connection in through
    a twisted.cred portal and gets an L{IPrincipal} avatar, whose rights
    (L{exmta.auth.permissions}) decide what it may do.
  - An accepted message goes to an L{IMessageSubmission} (the
    L{IMessageQueue} itself), which fires only once the message is
    durable.
  - The queue manager asks an L{IRecipientResolver} where each recipient
    goes, and hands local recipients to an L{IDeliveryAgent} and remote
    ones to an L{IRemoteDelivery}.  It holds its collaborators by
    interface: L{INextHops}, L{ISenderNotifications}, L{IRoutingEvents},
    and L{IQueueAdministration}, which the admin endpoint calls.

Built-in parts implement these interfaces exactly as plugins do.
"""

from twisted.cred.credentials import ICredentials
from zope.interface import Attribute, Interface


class IPrincipal(Interface):
    """
    The security principal a session runs as, with the rights the receive
    connector grants it.  This is the avatar of exmta's cred realm.
    """

    name = Attribute(
        "The principal's display name: an account's user principal name, or a "
        "well-known principal such as C{NT AUTHORITY\\ANONYMOUS LOGON}."
    )
    identities = Attribute(
        "frozenset of every principal name this session counts as, for "
        "matching permission entries (e.g. the account and "
        "C{NT AUTHORITY\\Authenticated Users})."
    )
    rights = Attribute("frozenset of the extended rights held, canonical names.")
    addresses = Attribute(
        "frozenset of lower-case e-mail addresses this principal owns "
        "(it may send as them)."
    )
    authAs = Attribute(
        "How Exchange labels the session in X-MS-Exchange-Organization-AuthAs: "
        "C{Anonymous}, C{Internal}, C{Partner} or C{Authenticated}."
    )

    def has(right):
        """
        Whether this principal holds C{right} (a canonical right name).
        """


class IExternallySecured(ICredentials):
    """
    Credentials claiming to be an Externally Secured Server, resting only on
    the peer's address: the connector's RemoteIPRanges decide whether the
    claim holds (Exchange's ExternalAuthoritative).
    """

    peerHost = Attribute("The peer's IP address, as a string.")


class IExchangeServerCertificate(ICredentials):
    """
    Exchange Server authentication: the certificate chain a TLS client
    presented on a receive connector whose AuthMechanism includes
    ExchangeServer (L{exmta.auth.certificates}).
    """

    chain = Attribute(
        "The client's certificates (C{cryptography.x509.Certificate}), its own first."
    )


class IDomainSecureCertificate(ICredentials):
    """
    Domain Security: the certificate chain a TLS client presented, and the
    partner domain (of its MAIL FROM) it must prove
    (L{exmta.auth.domainsecure}).
    """

    chain = Attribute(
        "The client's certificates (C{cryptography.x509.Certificate}), its own first."
    )
    domain = Attribute("The domain of TLSReceiveDomainSecureList the sender is in.")


class IAccountStore(Interface):
    """
    The accounts BasicAuth checks: user principal names with slow, salted
    password hashes.  Methods block (hashing is deliberately slow): call them
    from a thread.
    """

    def verify(userPrincipalName, password):
        """
        @return: L{True} if the account exists and the password is right.
        """

    def setPassword(userPrincipalName, password):
        """
        Create the account or change its password, durably.
        """

    def remove(userPrincipalName):
        """
        Delete the account.

        @raise KeyError: there is none.
        """

    def names():
        """
        @return: the user principal names, sorted.
        """


class IConfigurationStorage(Interface):
    """
    Where an organization's org.ini text lives: a file (the default, for
    one server) or a key of etcd that several transport servers share
    (L{exmta.config.storage}).  The Shell reads and writes the text through
    it; a server reads it at start and at each reload.
    """

    location = Attribute(
        "What the administrator named: org.ini's path or the etcd URL.  "
        "Opening it again reaches the same text."
    )
    name = Attribute(
        "What errors call it: the file's path, or the etcd URL of the key "
        "without its options."
    )
    folder = Attribute(
        "The local folder relative paths of org.ini start from, and where "
        "this server keeps its account and credential stores."
    )

    def read():
        """
        @return: C{(text, revision)}: the text as stored (a byte order
            mark kept) and an opaque revision to hand to L{replace}.
        @raise exmta.errors.ConfigError: it cannot be read.
        """

    def writing():
        """
        @return: a context manager held around a read, change and
            L{replace}: the file's write lock; nothing for etcd, whose
            L{replace} compares revisions instead.
        """

    def replace(text, revision):
        """
        Store C{text} if what is stored is still at C{revision} (any
        revision when C{revision} is L{None}).

        @return: whether it was stored; L{False} when another writer
            changed the text since it was read (read it again, redo the
            change).
        @raise exmta.errors.ConfigError: it cannot be written.
        """

    def organization(text):
        """
        @return: the L{exmta.config.model.Organization} C{text} describes,
            read as stored here.
        @raise exmta.errors.ConfigError: naming this storage, the line,
            section and key at fault.
        """


class IBackPressure(Interface):
    """
    Exchange 2010's back pressure as the receive side asks it
    (L{exmta.monitor}): whether a MAIL FROM may go on.
    """

    level = Attribute("The server's level now: C{Normal}, C{Medium} or C{High}.")

    def mailRefusal(principal, refusedBefore):
        """
        @param principal: the session's L{IPrincipal}.
        @param refusedBefore: how many MAIL FROMs of the session back
            pressure refused so far (the tarpit grows with them).
        @return: L{None} if the MAIL FROM may go on, else C{(delay,
            reply)}: the reply, to send after C{delay} seconds.
        """


class IReceiveObserver(Interface):
    """
    Hears what the receive side answers, for metrics
    (L{exmta.metrics}): called on the reactor thread, so it must be cheap
    and must not raise.
    """

    def replied(connector, session, reply):
        """
        The server sent C{reply} (an L{exmta.envelope.Reply}).

        @param connector: the L{exmta.config.model.ReceiveConnector} of
            the connection, or L{None} when none matched it.
        @param session: the L{exmta.envelope.Session}, or L{None} when the
            connection was refused before its session began.
        """

    def tlsNegotiated(connector, version):
        """
        A session on C{connector} finished its STARTTLS handshake with
        protocol C{version} (C{TLSv1.3}).
        """


class IMessageSubmission(Interface):
    """
    Where the receive side hands an accepted message: the queue itself, or
    a worker process's handle on its spool part (L{exmta.worker}).
    """

    def enqueue(envelope, session, message):
        """
        Store a message durably.

        @param envelope: the L{exmta.envelope.Envelope}.
        @param session: the L{exmta.envelope.Session} it arrived on.
        @param message: the message bytes, CRLF line ends, headers included.
        @return: a Deferred that fires with the queue id only once the
            message and its envelope are on disk and fsynced; until then the
            client must not hear 250.
        """


class ICleanup(Interface):
    """
    The stage between the SMTP session and the queue (Postfix's cleanup,
    L{exmta.cleanup}): what becomes of a message once its DATA has ended.
    """

    def endOfData(connector, session, envelope, message):
        """
        Check the message's header, add this hop's headers, run the
        transport agents' end-of-data events and submit the message.

        @param connector: the L{exmta.config.model.ReceiveConnector} it
            came in on.
        @param session: the L{exmta.envelope.Session}; its principal is
            the one the header is checked against.
        @param envelope: the L{exmta.envelope.Envelope}.
        @param message: the bytes the client sent, CRLF line ends, already
            checked for size, bare line ends and NUL octets.
        @return: the L{exmta.envelope.Reply} for the client, or a Deferred
            firing with it once the message is durable (or refused); it
            fails with L{exmta.errors.Disconnect} when an agent ends the
            session.
        """


class IMessageQueue(IMessageSubmission):
    """
    The durable queue between receiving and sending.
    """

    onEnqueued = Attribute(
        "A list of callables, each called with the new "
        "L{exmta.envelope.QueuedMessage} once a message is durable, before "
        "C{enqueue}'s Deferred fires: how the queue manager hears of new mail."
    )

    onAdopted = Attribute(
        "The same, called with each message of another process's spool part "
        "once it has moved into this queue (L{exmta.queue.spool.Spool.adoptPart})."
    )

    def messages():
        """
        @return: the L{exmta.envelope.QueuedMessage}s queued now, oldest first.
        """

    def messageBytes(queueId):
        """
        @return: a Deferred firing with the stored message bytes.
        """

    def update(queued):
        """
        Record new recipient states of a L{exmta.envelope.QueuedMessage}
        durably; remove the message once no recipient is C{Ready}.

        @return: a Deferred that fires when that is on disk.
        """


class IRecipientResolver(Interface):
    """
    Accepted-domain resolution: where a recipient address belongs.
    """

    def resolve(address):
        """
        @param address: an L{exmta.envelope.Address}.
        @return: an L{exmta.routing.Resolution}.
        """


class IRemoteDelivery(Interface):
    """
    The send side: delivers a message over SMTP to a next hop.
    """

    def send(nextHop, queued, recipients, message):
        """
        Deliver one message to some of its recipients in one SMTP
        transaction through C{nextHop}, reusing an open connection to that
        next hop where there is one.

        @param nextHop: the L{exmta.envelope.NextHop}.
        @param queued: the L{exmta.envelope.QueuedMessage}.
        @param recipients: the recipient addresses (str) for this next hop.
        @param message: the message bytes, CRLF line ends.
        @return: a Deferred firing with a mapping of every address in
            C{recipients} to L{None} (the next hop took it, and with it
            any RFC 3461 notification asked for), L{exmta.envelope.Relayed}
            (the next hop took it but offers no DSN, and the recipient asked
            for NOTIFY=SUCCESS: its sender is told "relayed") or an
            L{exmta.errors.SMTPFailure}: L{exmta.errors.PermanentFailure}
            (5xx), L{exmta.errors.TransientFailure} (4xx for that recipient)
            or L{exmta.errors.ConnectionFailure} (the attempt as a whole
            failed).  It never errbacks for a delivery outcome.
        """

    def close():
        """
        Stop sending: sends not yet under way fail at once with a
        L{exmta.errors.ConnectionFailure} (their recipients stay queued),
        transactions under way get a short time to finish.  Safe to call
        more than once.

        @return: a Deferred that fires once every connection is closed.
        """


class IMessageTrackingLog(Interface):
    """
    Exchange's message tracking log: one event per line.
    """

    def track(eventId, queued=None, **fields):
        """
        Record an event (C{RECEIVE}, C{SUBMIT}, C{SEND}, C{DELIVER},
        C{DEFER}, C{FAIL}, C{DSN}, C{EXPAND}) with Exchange's field names
        (C{messageId}, C{sender}, C{recipients}, C{connectorId},
        C{nextHop}, C{recipientStatus}, ...).  Never raises: tracking must
        not stop mail.
        """


# The queue manager's collaborators (L{exmta.queue.manager}): it works the
# passes over messages and holds one of each for the rest.


class INextHops(Interface):
    """
    What the queue manager knows of each next hop, in memory
    (L{exmta.queue.hops}): whether it is suspended (Suspend-Queue), the
    sends in flight to it, its DeliveryType, and whether it is in retry
    (Exchange's queue C{Retry} status: one message, the probe, tries it
    while the others wait, parked).  Keys are L{exmta.envelope.NextHop.key}s.
    """

    suspended = Attribute("The set of the keys of the suspended next hops.")

    def suspend(key):
        """
        Send nothing more to C{key} (sends in flight finish).
        """

    def resume(key):
        """
        Send to C{key} again.
        """

    def isSuspended(key):
        """
        @return: whether C{key} is suspended.
        """

    def noteRouted(nextHop):
        """
        A recipient was routed to the L{exmta.envelope.NextHop}
        C{nextHop}: its DeliveryType is known.
        """

    def sending(nextHop, queueId, addresses):
        """
        A send of message C{queueId} to C{addresses} through C{nextHop}
        starts.
        """

    def sent(nextHop, queueId):
        """
        The send of C{queueId} through C{nextHop} ended.
        """

    def inFlight():
        """
        @return: a copy of the sends in flight: key to {queue id: the
            addresses being sent}.
        """

    def deliveryTypes():
        """
        @return: a copy of key to DeliveryType, where known.
        """

    def waitsOnlyFor(queued, now, schedule):
        """
        @param schedule: the L{exmta.queue.retry.RetrySchedule}.
        @return: the key every due recipient of the
            L{exmta.envelope.QueuedMessage} C{queued} was deferred for, if
            there is one and only a send is due; else L{None}.
        """

    def hold(key, queueId):
        """
        Whether a message that waits only for C{key} is parked: not if it
        is to be the probe.

        @return: L{True} if the message is parked, to be released later.
        """

    def mayTry(key, queueId):
        """
        Whether a message just routed to C{key} alone may try it now: not
        while C{key} is in retry or probed by another message (then it is
        parked, to be released later).

        @return: L{False} if the message is parked.
        """

    def passEnded(queueId):
        """
        The pass over C{queueId} ended (a probe that did not try its next
        hop hands the probe on).
        """

    def retryTime(key):
        """
        @return: (when C{key} may be tried again, the
            L{exmta.errors.ConnectionFailure} that put it in retry), or
            L{None} when it is not in retry.
        """

    def judge(nextHop, failures, attempts, schedule):
        """
        After a send through C{nextHop}: if every one of C{failures} (what
        the send said of each recipient) is a
        L{exmta.errors.ConnectionFailure}, the next hop goes in retry for
        the interval C{schedule} gives a recipient with C{attempts} failed
        attempts before; any other answer releases what was parked for it.
        """

    def parked(key):
        """
        @return: how many messages are parked behind C{key}.
        """

    def parkedMessages():
        """
        @return: queue id to the key its message is parked behind.
        """

    def retrying():
        """
        @return: key to (when it may be tried again, the
            L{exmta.errors.ConnectionFailure} that put it in retry), for
            the next hops in retry.
        """

    def retryNow(name):
        """
        Take the next hops of the queue named C{name} out of retry
        (Retry-Queue).

        @return: the queue ids of the messages that were parked behind them.
        """

    def stop():
        """
        Forget every retry and cancel its timers.
        """


class ISenderNotifications(Interface):
    """
    What the queue manager tells senders (L{exmta.queue.notifications}):
    non-delivery reports and delay notifications, enqueued durably as RFC
    3464 reports; and the expiry that fails recipients for good.  C{work}
    is the L{exmta.queue.passes.Pass} over the message concerned.
    """

    reportingMta = Attribute("The Fqdn notifications name as their Reporting-MTA.")
    postmaster = Attribute("The address notifications come from.")

    def expire(work):
        """
        Fail every recipient of C{work} still C{Ready} with C{550 4.4.7}.
        """

    def delayReport(recipient):
        """
        @return: the L{exmta.queue.dsn.RecipientReport} saying that the
            L{exmta.envelope.QueuedRecipient} C{recipient} still waits.
        """

    def notify(work, reports):
        """
        Enqueue a notification to the sender of C{work}'s message.

        @param reports: its L{exmta.queue.dsn.RecipientReport}s.
        @return: a Deferred that fires once it is durable.
        """


class IRoutingEvents(Interface):
    """
    The routing agents' events (L{IRoutingAgent}) as the queue manager
    raises them (L{exmta.queue.routingagents}).  C{work} is the
    L{exmta.queue.passes.Pass} over the message concerned.
    """

    agents = Attribute(
        "The L{exmta.agents.AgentPipeline} whose routing agents are called, or L{None}."
    )

    def wants(event):
        """
        @return: whether any agent handles the event named C{event}.
        """

    def categorize(work, now):
        """
        Raise OnSubmittedMessage and OnResolvedMessage about the
        recipients due at C{now}, and apply the verdicts to C{work}.

        @return: a Deferred firing with whether the recipients changed
            (to be recorded before any delivery).
        """

    def routed(queued, addresses, message, nextHop=None):
        """
        Raise OnRoutedMessage before a delivery of C{message} to
        C{addresses}, through C{nextHop} (L{None} for local delivery).

        @return: a Deferred firing with the verdict, or L{None} when no
            agent handles the event.
        """

    def announce(work, queued):
        """
        Raise OnDelivered, OnDeferred and OnFailed for the outcomes of
        C{work}, now recorded as C{queued}, without waiting for the agents.
        """


class IShadowRedundancy(Interface):
    """
    The shadows the queue manager keeps of messages handed to another
    server of the organization under shadow redundancy
    (L{exmta.queue.shadow}): they stay queued, C{Shadow}, until that server
    reports them delivered, and are resubmitted when it stops answering.
    """

    servers = Attribute(
        "The set of the servers shadows were kept for since start (Get-Queue's "
        "Shadow Redundancy queues)."
    )

    def start():
        """
        Find the shadows the spool holds and start the heartbeat.
        """

    def stop():
        """
        Stop the heartbeat.
        """

    def reconfigure(settings):
        """
        Work with a new L{exmta.config.model.TransportConfig}.
        """

    def handedOff(work, outcomes, hop, addresses):
        """
        A send to C{hop} settled with C{outcomes}: record the recipients a
        server took under shadow redundancy C{Shadow}, in C{work} (the
        L{exmta.queue.passes.Pass}), before its result is recorded.
        """

    def recorded(queued):
        """
        The manager recorded the L{exmta.envelope.QueuedMessage} C{queued}.
        """


class IQueueAdministration(Interface):
    """
    What an administrator may do to a running queue
    (L{exmta.queue.administration}); the admin endpoint's commands
    (L{exmta.admin.commands}) call these.  No action overlaps a pass over
    the same message.  Queue names are next hop keys or
    L{exmta.queue.views}' queue names.
    """

    def state():
        """
        @return: the L{exmta.queue.views.QueueState} that Get-Queue and
            Get-Message show.
        """

    def isBusy(queueId):
        """
        @return: whether an action on C{queueId} asked for now waits for
            a pass in progress.
        """

    def suspendMessage(queueId):
        """
        Suspend a message, durably.

        @return: a Deferred firing with the message as now queued, or
            failing with L{KeyError} when it is not queued.
        """

    def resumeMessage(queueId):
        """
        Resume a suspended message; it is worked on at once.

        @return: a Deferred firing with the message as now queued, or
            failing with L{KeyError} when it is not queued.
        """

    def removeMessage(queueId, withNDR=True, queues=None):
        """
        Fail the message's C{Ready} recipients (those in the queues named
        C{queues}, or all) as removed by an administrator, telling the
        sender if C{withNDR}.

        @return: a Deferred firing with the message as now queued, or
            L{None} once it is gone; failing with L{KeyError} when it is
            not queued or has no recipient in C{queues}.
        """

    def suspendQueue(name):
        """
        Stop sending to the next hop C{name}, in memory.
        """

    def resumeQueue(name):
        """
        Send to the next hop C{name} again.
        """

    def retryQueue(name, resubmit=False):
        """
        Try the recipients in queue C{name} now; with C{resubmit}, route
        them again first.

        @return: how many messages were tried.
        """


class IDeliveryAgent(Interface):
    """
    Delivers messages to local mailboxes.  The TransportServer's
    C{DeliveryAgent} key names the one a server uses (C{Maildir} unless
    set); an L{IDeliveryAgentFactory} plugin makes it.
    """

    name = Attribute("The name org.ini uses for this agent.")

    def deliver(queued, mailboxes, message):
        """
        Deliver one message to some of its local recipients.

        @param queued: the L{exmta.envelope.QueuedMessage}.
        @param mailboxes: a mapping of recipient address to the
            L{exmta.config.model.Mailbox} (or mailbox folder name) it resolves to.
        @param message: the message bytes.
        @return: a Deferred firing with a mapping of recipient address to
            L{None} (delivered) or an L{exmta.errors.SMTPFailure}.
        """


class IDeliveryAgentFactory(Interface):
    """
    A delivery agent plugin, found with C{twisted.plugin.getPlugins} in the
    L{exmta.plugins} dropin package.  A TransportServer's C{DeliveryAgent}
    key names it; its settings come from a C{[DeliveryAgent <name>]}
    section, if there is one.  The built-in C{Maildir} is such a plugin.
    """

    name = Attribute("The name org.ini uses: C{DeliveryAgent = <name>}.")

    def makeDeliveryAgent(settings, transportServer, reactor):
        """
        @param settings: a dict of the C{[DeliveryAgent <name>]} section's
            keys, as written (empty when there is no such section).
        @param transportServer: the L{exmta.config.model.TransportServer}
            (its C{mailboxDatabasePath} is where mailboxes live by default).
        @param reactor: the reactor the agent runs on.
        @return: an L{IDeliveryAgent}.
        @raise ValueError: a key is unknown or its value bad (raise
            L{exmta.errors.SettingError} to point at the key); a
            L{exmta.errors.ConfigError} naming the line results.
        """


class ICheckerFactory(Interface):
    """
    An authentication plugin: makes the twisted.cred checker that verifies
    the user names and passwords of BasicAuth on a receive connector.  A
    connector's C{CredentialCheckers} key names the ones it asks, in order
    (C{Accounts}, the built-in account store, unless set); settings come
    from a C{[CredentialChecker <name>]} section, if there is one.  Shaped
    like Twisted's own C{twisted.cred.strcred.ICheckerFactory}.
    """

    name = Attribute("The name org.ini uses: C{CredentialCheckers = <name>, ...}.")
    credentialInterfaces = Attribute(
        "The credential interfaces its checkers accept; BasicAuth needs "
        "C{twisted.cred.credentials.IUsernamePassword}."
    )

    def makeChecker(settings, organization, reactor):
        """
        @param settings: a dict of the C{[CredentialChecker <name>]}
            section's keys, as written (empty when there is none).
        @param organization: the L{exmta.config.model.Organization}.
        @param reactor: the reactor (whose thread pool may run slow checks).
        @return: a L{twisted.cred.checkers.ICredentialsChecker} whose
            avatar ids are user principal names (C{str}), which the
            connector's realm turns into an L{IPrincipal}.  It must not
            block the reactor.
        @raise ValueError: as L{IDeliveryAgentFactory.makeDeliveryAgent}.
        """


class IAgentFactory(Interface):
    """
    A transport agent plugin, found with C{twisted.plugin.getPlugins} in the
    L{exmta.plugins} dropin package and enabled by a C{[TransportAgent Name]}
    section of org.ini whose name is C{name}.
    """

    name = Attribute("The name org.ini uses: C{[TransportAgent <name>]}.")

    def makeAgent(settings, organization, reactor):
        """
        @param settings: a dict of the section's keys other than exmta's own
            (Enabled, Priority, Timeout, FailurePolicy, DisableAfterFailures,
            Comment), as written.
        @param organization: the L{exmta.config.model.Organization} (e.g.
            C{organization.folder}, which relative paths are relative to).
        @param reactor: the reactor the agent runs on (e.g. its thread pool
            for CPU-heavy work, which must not block the reactor).
        @return: an agent providing L{IReceiveAgent}, L{IRoutingAgent} or
            both; it is called at the events whose methods it has.
        @raise ValueError: a key is unknown or its value bad; raise
            L{exmta.errors.SettingError} to point at the key.  Either is a
            L{exmta.errors.ConfigError} naming the line.
        """


class IReceiveAgent(Interface):
    """
    A receive agent: called at SMTP events of every receive connector, in
    Priority order.  An agent defines only the methods of the events it
    handles; the others are never called.

    Each method takes an L{exmta.agents.AgentEvent} (the session, the
    envelope, and what the event is about) and returns an
    L{exmta.agents.Verdict}, or a Deferred firing with one.  The first
    verdict other than CONTINUE decides; ACCEPT skips the agents after it
    for that event.  An agent that raises or does not answer within its
    Timeout fails the command with 451 4.7.0 (FailClosed) or is skipped
    (FailOpen).
    """

    def OnConnect(event):
        """
        The connection was admitted, before the greeting.  A refusal of any
        kind is sent instead of the greeting and closes the connection.
        """

    def OnHelo(event):
        """
        HELO, valid so far; C{event.session.helo} is the name given.
        """

    def OnEhlo(event):
        """
        EHLO, valid so far; C{event.session.helo} is the name given.
        """

    def OnAuth(event):
        """
        A successful AUTH; C{event.session} is the authenticated session.
        Refused, the session stays as it was before AUTH.
        """

    def OnMailCommand(event):
        """
        MAIL FROM, accepted by exmta's checks; C{event.address} is the
        sender and C{event.envelope} the transaction it starts.
        """

    def OnRcptCommand(event):
        """
        RCPT TO, accepted by exmta's checks; C{event.address} is the
        recipient (not yet in C{event.envelope}).
        """

    def OnDataCommand(event):
        """
        DATA, before the 354 reply.
        """

    def OnEndOfHeaders(event):
        """
        The message's header as received (C{event.header}, bytes).  exmta
        reads a message whole, so this comes at the end of data, right
        before L{OnEndOfData}.
        """

    def OnEndOfData(event):
        """
        The whole message as it will be queued (C{event.message}, bytes,
        CRLF line ends, exmta's Received headers included).  A CONTINUE or
        ACCEPT verdict may carry new message bytes, which later agents see
        and the queue stores.
        """

    def OnDisconnect(event):
        """
        The connection is gone; the verdict is ignored.
        """


class IRoutingAgent(Interface):
    """
    A routing agent: called as the queue manager works a message, in
    Priority order (the same [TransportAgent] sections and Priority as
    receive agents; one agent object may be both).  An agent defines only
    the methods of the events it handles.

    Each method takes an L{exmta.agents.RoutingEvent} and returns an
    L{exmta.agents.Verdict} (or a Deferred firing with one), except the
    delivery notifications, whose answer is ignored.  At the message
    events, REJECT fails the recipients concerned with its reply (the
    sender gets a non-delivery report), TEMPORARY_REJECT defers them (they
    are retried on the queue's schedule) and DISCONNECT is not allowed.  An
    agent that raises or does not answer within its Timeout defers the
    recipients concerned with 451 4.7.0 (FailClosed) or is skipped
    (FailOpen); no mail is lost either way.
    """

    def OnSubmittedMessage(event):
        """
        The message is in the queue, before its recipients are resolved:
        called once per message, the queue's own delivery status
        notifications included (again only if the process died before
        that was recorded, or if an agent refused or failed: then at the
        next attempt).  C{event.message} is the message bytes as queued;
        C{event.recipients} every recipient still to be delivered.
        """

    def OnResolvedMessage(event):
        """
        After accepted-domain resolution, once per message, as
        L{OnSubmittedMessage}; C{event.recipients} are the recipients
        resolution knows (unknown local ones fail with 5.1.1).  A CONTINUE
        or ACCEPT verdict may carry C{recipients=}, a mapping of some of
        C{event.recipients} (str) to the addresses (str) each becomes: none
        drops it (it is neither delivered nor reported), others expand or
        redirect it; an address already among the message's recipients is
        not added twice.  The change is recorded in the queue before
        anything is delivered.
        """

    def OnRoutedMessage(event):
        """
        Before each delivery attempt to one next hop: C{event.nextHop} is
        the L{exmta.envelope.NextHop} (its C{connector} the send connector)
        or L{None} for local delivery, C{event.recipients} the recipients
        going there, C{event.message} the bytes about to be sent.  A
        CONTINUE or ACCEPT verdict may carry C{message=} new bytes for this
        attempt only (the queued copy stays as it was; e.g. a DKIM
        signature), or C{nextHop=} another L{exmta.envelope.NextHop}.
        """

    def OnDelivered(event):
        """
        C{event.recipients} were delivered through C{event.nextHop} (L{None}
        for local delivery).  For notifications; the answer is ignored.
        """

    def OnDeferred(event):
        """
        C{event.recipients} failed transiently with C{event.reply} (str) and
        will be retried.  The answer is ignored.
        """

    def OnFailed(event):
        """
        C{event.recipients} failed for good with C{event.reply} (str); the
        sender is told.  The answer is ignored.
        """
