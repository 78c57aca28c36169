"""
Mailboxes and the accounts that log on with BasicAuth: New-Mailbox,
Get-Mailbox, Set-Mailbox, Remove-Mailbox, and New-User, Get-User,
Remove-User for an account without a mailbox (the reference's
"smtpgateway@fabrikam.com" domain account).

A mailbox is a C{[Mailbox Name]} section of org.ini; its account (user
principal name and password) is in the account store next to org.ini,
the password only as an argon2 hash, never in org.ini.  Exchange's
C{EmailAddresses} holds every address of a mailbox, the primary one with
an upper-case C{SMTP:} prefix; org.ini keeps the primary one as
PrimarySmtpAddress and the others as EmailAddresses.
"""

from dataclasses import dataclass

from exmta.auth.accounts import AccountStore, checkUserPrincipalName
from exmta.config.organization import MAILBOX_KEYS
from exmta.errors import ConfigError
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf, revealPassword
from exmta.shell.configedit import apply, hashtableOf, items, load, matching, nameOf, notFound, valueText


@dataclass(frozen=True)
class MailboxView:
    DefaultDisplayPropertySet = ("Name", "Alias", "PrimarySmtpAddress")

    Identity: str
    Name: str
    Alias: str
    PrimarySmtpAddress: str
    EmailAddresses: tuple
    UserPrincipalName: str


@dataclass(frozen=True)
class UserView:
    Identity: str
    Name: str
    UserPrincipalName: str


def _mailboxView(mailbox):
    others = sorted(mailbox.emailAddresses - {mailbox.primarySmtpAddress})
    return MailboxView(
        Identity=mailbox.name,
        Name=mailbox.name,
        Alias=mailbox.primarySmtpAddress.partition("@")[0],
        PrimarySmtpAddress=mailbox.primarySmtpAddress,
        EmailAddresses=("SMTP:" + mailbox.primarySmtpAddress,) + tuple("smtp:" + a for a in others),
        UserPrincipalName=mailbox.userPrincipalName,
    )


def _address(text):
    text = text.strip()
    return text[5:] if text.lower().startswith("smtp:") else text


def _password(value):
    password = revealPassword(value)
    if not password:
        raise CmdletError("-Password: the password is empty")
    return password


def _upn(value):
    try:
        return checkUserPrincipalName(identityOf(value).strip())
    except ValueError as error:
        raise CmdletError(f"-UserPrincipalName: {error}") from None


def _accounts(context, organization=None):
    if organization is None:
        organization = load(context)
    try:
        return AccountStore.open(organization.accountStorePath)
    except ConfigError as error:
        raise CmdletError(str(error)) from None


def _mailboxSpan(document, identity, path):
    """
    @return: the [Mailbox] section C{identity} names: its name, one of its
        addresses or its user principal name.
    """
    wanted = _address(identityOf(identity)).lower()
    for span in document.sections("Mailbox"):
        addresses = [span.get("PrimarySmtpAddress") or "", span.get("UserPrincipalName") or ""]
        addresses += items(span.get("EmailAddresses") or "")
        if wanted == span.name.lower() or wanted in (_address(a).lower() for a in addresses):
            return span
    raise notFound(identityOf(identity), path)


def _defaultDomain(organization):
    for accepted in organization.acceptedDomains:
        if accepted.domainType == "Authoritative":
            return accepted.domainName.removeprefix("*.")
    raise CmdletError("-PrimarySmtpAddress is required: there is no Authoritative accepted domain")


@cmdlet(
    "New-Mailbox",
    Parameter("Name", mandatory=True, position=0),
    Parameter("UserPrincipalName"),
    Parameter("Password"),
    Parameter("PrimarySmtpAddress"),
    Parameter("Alias"),
    supportsWhatIf=True,
)
def newMailbox(context, Name, UserPrincipalName=None, Password=None, PrimarySmtpAddress=None, Alias=None):
    """
    Create the mailbox C{Name}: its section in org.ini and, with
    -Password, its account.  Its address is -PrimarySmtpAddress, else
    -Alias at the first Authoritative accepted domain, else the user
    principal name.  Without -Password the mailbox receives mail, and
    logs on only if an account of its user principal name exists
    (New-User).
    """
    name = nameOf(Name, "mailbox")
    upn = _upn(UserPrincipalName) if UserPrincipalName is not None else None
    password = _password(Password) if Password is not None else None
    organization = load(context)
    if PrimarySmtpAddress is not None:
        primary = _address(identityOf(PrimarySmtpAddress))
    elif Alias is not None:
        primary = f"{identityOf(Alias).strip()}@{_defaultDomain(organization)}"
    elif upn is not None:
        primary = upn
    else:
        raise CmdletError("give -PrimarySmtpAddress, -Alias or -UserPrincipalName: the mailbox needs an address")
    logon = (upn or primary).lower()
    if password is not None and logon in _accounts(context, organization).names():
        raise CmdletError(f"The user principal name {logon} is already in use; change its password with Set-Mailbox -Password.")

    def change(document):
        if document.section("Mailbox", name) is not None:
            raise CmdletError(f"A mailbox named '{name}' already exists.")
        entries = [("PrimarySmtpAddress", valueText(MAILBOX_KEYS, "PrimarySmtpAddress", primary))]
        if upn is not None and upn != primary.lower():
            entries.append(("UserPrincipalName", upn))
        document.addSection("Mailbox", name, entries)
        if password is None:
            return None
        return lambda organization: AccountStore(organization.accountStorePath).setPassword(logon, password)

    organization = apply(context, "New-Mailbox", name, change)
    if organization is not None:
        return [_mailboxView(m) for m in organization.mailboxes if m.name.lower() == name.lower()]


@cmdlet("Get-Mailbox", Parameter("Identity", position=0, pipeline=True))
def getMailbox(context, Identity=None):
    organization = load(context)
    mailboxes = organization.mailboxes
    if Identity is not None:
        wanted = _address(identityOf(Identity)).lower()
        mailboxes = matching(mailboxes, Identity, "name") or [
            m for m in mailboxes if wanted in m.emailAddresses or wanted == m.userPrincipalName
        ]
        if not mailboxes:
            raise notFound(identityOf(Identity), context.configPath)
    return [_mailboxView(m) for m in mailboxes]


@cmdlet(
    "Set-Mailbox",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Name"),
    Parameter("PrimarySmtpAddress"),
    Parameter("EmailAddresses", kind="list"),
    Parameter("UserPrincipalName"),
    Parameter("Password"),
    supportsWhatIf=True,
)
def setMailbox(context, Identity, Name=None, PrimarySmtpAddress=None, EmailAddresses=None, UserPrincipalName=None, Password=None):
    """
    Change a mailbox.  -EmailAddresses in Exchange's form sets every
    address (C{SMTP:} marks the primary one) or, as a hashtable, adds and
    removes secondary ones; a new -PrimarySmtpAddress keeps the old one as
    a secondary address.  A new -UserPrincipalName moves the account,
    which needs -Password (the store keeps only a hash).
    """
    identity = identityOf(Identity)
    EmailAddresses = hashtableOf(EmailAddresses)
    password = _password(Password) if Password is not None else None
    upn = _upn(UserPrincipalName) if UserPrincipalName is not None else None
    accounts = _accounts(context)

    def change(document):
        span = _mailboxSpan(document, identity, context.configPath)
        name = span.name
        primary = span.get("PrimarySmtpAddress") or ""
        others = [_address(a) for a in items(span.get("EmailAddresses") or "")]
        oldLogon = (span.get("UserPrincipalName") or primary).lower()
        if EmailAddresses is not None:
            others = _emailAddresses(EmailAddresses, others)
            if not isinstance(EmailAddresses, dict):
                marked = [_address(a) for a in items(EmailAddresses) if a.strip().startswith("SMTP:")]
                if len(marked) > 1:
                    raise CmdletError("-EmailAddresses: only one address can be the primary one (SMTP:)")
                if marked:
                    primary = marked[0]
        if PrimarySmtpAddress is not None:
            new = _address(identityOf(PrimarySmtpAddress))
            if new.lower() != primary.lower():
                others.append(primary)
                primary = new
        others = _unique(a for a in others if a.lower() != primary.lower())
        if Name is not None:
            newName = nameOf(Name, "mailbox")
            other = document.section("Mailbox", newName)
            if other is not None and other.header != span.header:
                raise CmdletError(f"A mailbox named '{newName}' already exists.")
            document.rename(span, newName)
            name = newName
        changes = {}
        if EmailAddresses is not None or PrimarySmtpAddress is not None:
            changes = {"PrimarySmtpAddress": primary, "EmailAddresses": tuple(others) or None}
        # The logon name stays when the address changes, as in Exchange:
        # a UserPrincipalName that was the primary address by default is
        # written out.
        newLogon = upn or oldLogon
        if upn is not None or (span.get("UserPrincipalName") is None and newLogon != primary.lower()):
            changes["UserPrincipalName"] = newLogon
        for key, value in changes.items():
            document.set(document.section("Mailbox", name), key, value)
        moved = newLogon != oldLogon and oldLogon in accounts.names()
        if moved and password is None:
            raise CmdletError(
                f"the account {oldLogon} would become {newLogon}, and the account store "
                "keeps only a hash of its password: give -Password as well"
            )
        if password is None:
            return None

        def store(organization):
            accountStore = AccountStore(organization.accountStorePath)
            accountStore.setPassword(newLogon, password)
            if moved:
                accountStore.remove(oldLogon)

        return store

    apply(context, "Set-Mailbox", identity, change)


def _emailAddresses(value, current):
    """
    @return: the secondary addresses after -EmailAddresses C{value}: a
        list replaces them (the C{SMTP:} one is the primary and is dealt
        with by the caller), a hashtable adds and removes.
    """
    if not isinstance(value, dict):
        return [_address(a) for a in items(value) if not a.strip().startswith("SMTP:")]
    addresses = list(current)
    for verb, change in value.items():
        verb = str(verb).lower()
        if verb not in ("add", "remove"):
            raise CmdletError(f"-EmailAddresses: a hashtable takes the keys Add and Remove, not {verb!r}")
        for address in (_address(a) for a in items(change)):
            if verb == "add":
                addresses.append(address)
            else:
                addresses = [a for a in addresses if a.lower() != address.lower()]
    return addresses


def _unique(addresses):
    seen = {}
    for address in addresses:
        seen.setdefault(address.lower(), address)
    return list(seen.values())


@cmdlet(
    "Remove-Mailbox",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def removeMailbox(context, Identity):
    """
    Remove a mailbox's section and its account, as Exchange removes the
    mailbox and its user.  The messages in its folder stay on disk.
    """
    identity = identityOf(Identity)

    def change(document):
        span = _mailboxSpan(document, identity, context.configPath)
        logon = (span.get("UserPrincipalName") or span.get("PrimarySmtpAddress") or "").lower()
        document.removeSection(span)

        def forget(organization):
            accountStore = AccountStore(organization.accountStorePath)
            if logon in accountStore.names():
                accountStore.remove(logon)

        return forget

    apply(context, "Remove-Mailbox", identity, change)


@cmdlet(
    "New-User",
    Parameter("Name", mandatory=True, position=0),
    Parameter("UserPrincipalName", mandatory=True),
    Parameter("Password", mandatory=True),
    supportsWhatIf=True,
)
def newUser(context, Name, UserPrincipalName, Password):
    """
    Create an account without a mailbox: a user principal name and
    password in the account store; org.ini does not change.
    """
    name = nameOf(Name, "user")
    upn = _upn(UserPrincipalName)
    password = _password(Password)
    accounts = _accounts(context)
    if upn in accounts.names():
        raise CmdletError(f"The user principal name {upn} is already in use.")
    if not context.shouldProcess(upn, "New-User"):
        return None
    accounts.setPassword(upn, password)
    return UserView(Identity=upn, Name=name, UserPrincipalName=upn)


@cmdlet("Get-User", Parameter("Identity", position=0, pipeline=True))
def getUser(context, Identity=None):
    """
    The accounts, by user principal name (the store keeps no other name).
    """
    views = [UserView(upn, upn, upn) for upn in _accounts(context).names()]
    if Identity is not None:
        views = matching(views, Identity, "UserPrincipalName")
        if not views:
            raise notFound(identityOf(Identity), context.configPath)
    return views


@cmdlet(
    "Remove-User",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def removeUser(context, Identity):
    """
    Remove an account.  A mailbox whose user principal name it was stays
    and still receives mail, but can no longer log on.
    """
    upn = identityOf(Identity).strip().lower()
    accounts = _accounts(context)
    if upn not in accounts.names():
        raise notFound(upn, accounts.path)
    if context.shouldProcess(upn, "Remove-User"):
        accounts.remove(upn)
