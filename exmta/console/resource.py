"""
The console's root resource: logon, logoff and the organization overview.

Sessions are kept in memory, named by a random cookie that is Secure,
HttpOnly and SameSite=Strict, and expire after L{SESSION_TIMEOUT} idle
seconds.  Every POST carries a CSRF token: the session's own once logged
on, and before that the token of the logon form, also set as a cookie and
compared with the form's (a double-submit token).

Who may log on is twisted.cred's business: the portal's checker verifies
the password against the organization's accounts, and
L{OrganizationManagementRealm} lets in only the members of the
"Organization Management" role group.
"""

import hmac
import secrets

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.template import Element, TagLoader, renderElement, tags
from zope.interface import Interface, implementer

from exmta.shell.format import formatValue, getProperty, shown
from exmta.shell.runtime import Session, ShellError, loadCmdlets

log = Logger()

SESSION_TIMEOUT = 20 * 60
SESSION_COOKIE = b"exmta-ecp-session"
LOGON_COOKIE = b"exmta-ecp-logon"

# No script, no frame, forms posting only here.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; style-src 'unsafe-inline'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}

# What the overview shows of each cmdlet's objects.
OVERVIEW = (
    ("Server", "Get-TransportServer", ("Name", "Fqdn", "DeliveryAgent")),
    (
        "Receive connectors",
        "Get-ReceiveConnector",
        ("Identity", "Enabled", "Bindings", "RemoteIPRanges", "AuthMechanism", "PermissionGroups"),
    ),
    (
        "Send connectors",
        "Get-SendConnector",
        ("Identity", "Enabled", "AddressSpaces", "SmartHosts", "SmartHostAuthMechanism"),
    ),
    ("Accepted domains", "Get-AcceptedDomain", ("Name", "DomainName", "DomainType", "Default")),
)


class IConsoleUser(Interface):
    """
    A member of the Organization Management role group, logged on.
    """


@implementer(IRealm)
class OrganizationManagementRealm:
    """
    Gives a console avatar (the lower-case user principal name) to the
    members of the "Organization Management" role group only.
    """

    def __init__(self, members):
        self.members = frozenset(m.lower() for m in members)

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IConsoleUser not in interfaces:
            raise NotImplementedError("the console's realm gives console users only")
        name = avatarId.decode() if isinstance(avatarId, bytes) else avatarId
        if name.lower() not in self.members:
            raise UnauthorizedLogin(f"{name} is not a member of Organization Management")
        return IConsoleUser, name.lower(), lambda: None


STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#e8eef7}.error{color:#a00}"
)


def _page(title, *body):
    """
    @return: an L{Element} of the whole page; twisted.web.template escapes
        every string in C{body}.
    """
    return Element(
        loader=TagLoader(
            tags.html(lang="en")(
                tags.head(
                    tags.meta(charset="utf-8"),
                    tags.title(title, " - exmta"),
                    tags.style(STYLE),
                ),
                tags.body(tags.h1(title), *body),
            )
        )
    )


class ConsoleResource(resource.Resource):
    """
    The console, at whatever path it is mounted: GET C{logon}, POST
    C{logon} and C{logoff}, GET the root for the overview.
    """

    isLeaf = True

    def __init__(self, configPath, portal, reactor):
        """
        @param configPath: the org.ini the Shell's cmdlets read.
        @param portal: a twisted.cred portal whose realm gives
            L{IConsoleUser} avatars.
        @param reactor: for the sessions' clock.
        """
        super().__init__()
        self.configPath = configPath
        self.portal = portal
        self.reactor = reactor
        self.sessions = {}
        loadCmdlets()

    # Dispatch.

    def render(self, request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        action = b"/".join(request.postpath)
        method = request.method
        if action == b"logon" and method == b"GET":
            return self._logonForm(request)
        if action == b"logon" and method == b"POST":
            return self._logon(request)
        user = self._user(request)
        if user is None:
            if method == b"POST":
                return self._refuse(request, 403, "Log on first.")
            return self._redirect(request, b"logon")
        if action == b"logoff" and method == b"POST":
            return self._logoff(request, user)
        if action == b"" and method == b"GET":
            return self._overview(request, user)
        return self._refuse(request, 404, "There is no such page.")

    def _base(self, request):
        return b"/" + b"".join(part + b"/" for part in request.prepath)

    def _redirect(self, request, where):
        request.setResponseCode(303)
        request.setHeader(b"location", self._base(request) + where)
        return b""

    def _refuse(self, request, code, message):
        request.setResponseCode(code)
        return self._render(request, "Refused", tags.p(message, class_="error"))

    def _render(self, request, title, *body):
        renderElement(request, _page(title, *body))
        return NOT_DONE_YET

    def _cookie(self, request, name, value, maxAge=None):
        request.addCookie(
            name,
            value,
            path=self._base(request),
            secure=True,
            httpOnly=True,
            sameSite="strict",
            max_age=maxAge,
        )

    # Sessions.

    def _user(self, request):
        """
        @return: the logged-on session's (user, csrf token), or L{None}.
        """
        key = request.getCookie(SESSION_COOKIE)
        session = self.sessions.get(key) if key else None
        if session is None:
            return None
        now = self.reactor.seconds()
        if now - session["seen"] > SESSION_TIMEOUT:
            del self.sessions[key]
            return None
        session["seen"] = now
        return session

    def _csrfValid(self, request, expected):
        given = request.args.get(b"csrf", [b""])[0]
        return bool(expected) and hmac.compare_digest(given, expected)

    # Pages.

    def _logonForm(self, request, message=None, code=200):
        token = secrets.token_urlsafe(32).encode()
        self._cookie(request, LOGON_COOKIE, token)
        request.setResponseCode(code)
        form = tags.form(method="post", action=self._base(request).decode() + "logon")(
            tags.input(type="hidden", name="csrf", value=token.decode()),
            tags.p(tags.label("User name: ", tags.input(name="username", id="username"))),
            tags.p(
                tags.label(
                    "Password: ", tags.input(name="password", id="password", type="password")
                )
            ),
            tags.p(tags.button("Log on", type="submit", id="logon")),
        )
        error = tags.p(message, class_="error", id="error") if message else ""
        return self._render(request, "exmta Management Console", error, form)

    def _logon(self, request):
        if not self._csrfValid(request, request.getCookie(LOGON_COOKIE)):
            return self._refuse(request, 403, "The logon form has expired; load it again.")
        name = request.args.get(b"username", [b""])[0].decode("utf-8", "replace").strip()
        password = request.args.get(b"password", [b""])[0]
        address = request.getClientAddress()
        login = self.portal.login(UsernamePassword(name.encode(), password), None, IConsoleUser)
        # The password check takes a while; a browser that has gone by then
        # gets no answer (finishing its request would be an error).
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def loggedOn(result):
            _, user, _ = result
            if gone:
                return
            key = secrets.token_urlsafe(32).encode()
            self.sessions[key] = {
                "user": user,
                "csrf": secrets.token_urlsafe(32).encode(),
                "seen": self.reactor.seconds(),
            }
            log.info("console logon by {user} from {client}", user=user, client=address.host)
            self._cookie(request, SESSION_COOKIE, key)
            self._cookie(request, LOGON_COOKIE, b"", maxAge="0")
            self._redirect(request, b"")
            request.finish()

        def refused(failure):
            failure.trap(UnauthorizedLogin)
            log.info("console logon refused for {user} from {client}", user=name, client=address.host)
            if gone:
                return
            self._logonForm(
                request,
                "The user name or password is incorrect, or the account is not a member "
                "of Organization Management.",
                code=403,
            )

        login.addCallbacks(loggedOn, refused)
        login.addErrback(
            lambda failure: (log.failure("console logon", failure), self._fail(request))
        )
        return NOT_DONE_YET

    def _fail(self, request):
        request.setResponseCode(500)
        request.write(b"The console could not complete the request; see the server's log.")
        request.finish()

    def _logoff(self, request, session):
        if not self._csrfValid(request, session["csrf"]):
            return self._refuse(request, 403, "The request carried no valid CSRF token.")
        self.sessions.pop(request.getCookie(SESSION_COOKIE), None)
        self._cookie(request, SESSION_COOKIE, b"", maxAge="0")
        log.info("console logoff by {user}", user=session["user"])
        return self._redirect(request, b"logon")

    def _overview(self, request, session):
        shell = Session(self.configPath)
        sections = []
        for title, command, columns in OVERVIEW:
            try:
                objects = shell.invoke(command)
            except ShellError as error:
                sections.append(tags.h2(title))
                sections.append(tags.p(str(error), class_="error"))
                continue
            sections.append(tags.h2(title))
            sections.append(_table(command, columns, objects))
        logoff = tags.form(method="post", action=self._base(request).decode() + "logoff")(
            tags.input(type="hidden", name="csrf", value=session["csrf"].decode()),
            tags.p(
                "Logged on as ",
                tags.strong(session["user"], id="user"),
                " ",
                tags.button("Log off", type="submit", id="logoff"),
            ),
        )
        return self._render(request, "Organization overview", logoff, *sections)


def _table(command, columns, objects):
    header = tags.tr(*(tags.th(column) for column in columns))
    rows = [
        tags.tr(*(tags.td(formatValue(shown(c, getProperty(o, c)))) for c in columns))
        for o in objects
    ]
    return tags.table(id=command, class_="overview")(header, *rows)
