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

Failed logons are throttled per client address and per account name as
the SMTP side's AUTH is, by the same rules (L{exmta.auth.throttle}: 10
failures from an address, then one a minute; 20 for an account, then one
every five minutes): a logon past either limit is refused before its
password is checked, with a page that says to wait, and logged.
"""

import hmac
import secrets

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET
from twisted.internet.defer import maybeDeferred
from twisted.web.template import renderElement, tags
from zope.interface import Interface, implementer

from exmta.auth.throttle import LogonThrottle
from exmta.console import (
    accepteddomains,
    dashboard,
    enhance,
    messagetracking,
    newreceiveconnector,
    overview,
    permissions,
    queueviewer,
    receiveconnectors,
    recipients,
    sendconnectors,
    servers,
    transportagents,
)
from exmta.console.page import Context, page
from exmta.shell.host import MemoryHost
from exmta.shell.runtime import Session, loadCmdlets

log = Logger()

SESSION_TIMEOUT = 20 * 60
SESSION_COOKIE = b"exmta-ecp-session"
LOGON_COOKIE = b"exmta-ecp-logon"

# No script but the console's own file (exmta.console.enhance), which may
# fetch from here only; no frame; forms posting only here.
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'none'; style-src 'unsafe-inline'; "
    b"script-src 'self'; connect-src 'self'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
}

# The console's pages (see exmta.console.page).
PAGE_MODULES = (dashboard, overview, accepteddomains, servers, receiveconnectors,
                newreceiveconnector, permissions, transportagents, recipients, sendconnectors,
                queueviewer, messagetracking, enhance)


class IConsoleUser(Interface):
    """
    A member of the Organization Management role group, or of View-Only
    Organization Management, logged on.
    """


@implementer(IRealm)
class OrganizationManagementRealm:
    """
    Gives a console avatar to the members of the "Organization Management"
    and "View-Only Organization Management" role groups only: the
    lower-case user principal name and whether the user may change
    anything.
    """

    def __init__(self, members, viewOnlyMembers=()):
        self.members = frozenset(m.lower() for m in members)
        self.viewOnlyMembers = frozenset(m.lower() for m in viewOnlyMembers)

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IConsoleUser not in interfaces:
            raise NotImplementedError("the console's realm gives console users only")
        name = (avatarId.decode() if isinstance(avatarId, bytes) else avatarId).lower()
        if name in self.members:
            return IConsoleUser, (name, True), lambda: None
        if name in self.viewOnlyMembers:
            return IConsoleUser, (name, False), lambda: None
        raise UnauthorizedLogin(f"{name} is not a member of Organization Management")


class ConsoleResource(resource.Resource):
    """
    The console, at whatever path it is mounted: GET and POST C{logon},
    POST C{logoff}, and the pages of L{PAGE_MODULES}.
    """

    isLeaf = True

    def __init__(self, configPath, portal, reactor, runInThread=None, reload=None, throttle=None):
        """
        @param configPath: the org.ini the Shell's cmdlets read.
        @param portal: a twisted.cred portal whose realm gives
            L{IConsoleUser} avatars.
        @param reactor: for the sessions' clock.
        @param runInThread: runs a function with its arguments in the
            console's thread, returning a Deferred of its result (the
            Shell's cmdlets block); by default, in the calling thread.
        @param reload: called after every change, to have the running
            server read org.ini again; by default nothing is.
        @param throttle: the L{LogonThrottle} of failed logons; by default
            the console's own, on C{reactor}'s clock.
        """
        super().__init__()
        self.configPath = configPath
        self.portal = portal
        self.reactor = reactor
        self.sessions = {}
        self.pageModules = PAGE_MODULES
        self.routes = {}
        for module in self.pageModules:
            self.routes.update(module.ROUTES)
        self._runInThread = runInThread or maybeDeferred
        self._reload = reload
        self.throttle = throttle or LogonThrottle(reactor)
        loadCmdlets()

    def runShell(self, text, answers=()):
        """
        @param answers: the lines the statements' prompts read.
        @return: a Deferred of the objects C{text}'s statements output, run
            by a Shell session of their own in the console's thread.
        """
        host = MemoryHost(answers)
        return self._runInThread(lambda: Session(self.configPath, host=host).invoke(text))

    def reload(self):
        """
        Have the running server read org.ini again.

        @return: L{None}, or why the server refused the new configuration
            (it runs on under the old one; a listener it cannot open, for
            instance).
        """
        if self._reload is None:
            return None
        try:
            self._reload()
        except Exception as error:  # the server has logged it
            return str(error)
        return None

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
        session = self._user(request)
        if session is None:
            if method == b"POST":
                return self._refuse(request, 403, "Log on first.")
            return self._redirect(request, b"logon")
        if method == b"POST" and not self._csrfValid(request, session["csrf"]):
            return self._refuse(request, 403, "The request carried no valid CSRF token.")
        if action == b"logoff" and method == b"POST":
            return self._logoff(request, session)
        first, *rest = [part.decode("utf-8", "replace") for part in request.postpath] or [""]
        handler = self.routes.get((method, first))
        if handler is None:
            return self._refuse(request, 404, "There is no such page.")
        context = Context(self, request, session)
        if method == b"POST" and not context.canChange:
            return context.refuse(
                403, "Members of View-Only Organization Management cannot change anything."
            )
        request.notifyFinish().addErrback(lambda _: context.disconnected())
        result = maybeDeferred(handler, context, rest)
        result.addErrback(self._pageFailed, context)
        return NOT_DONE_YET

    def _pageFailed(self, failure, context):
        log.failure("console page {path}", failure, path=context.request.path)
        if not context.gone:
            self._fail(context.request)

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
        renderElement(request, page(title, "", body, ""))
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
        attempt = self.throttle.attempt(address.host, name.encode())
        if attempt is None:
            log.warn(
                "console logon refused unchecked for {user} from {client}: too many failed "
                "logons", user=name, client=address.host,
            )
            return self._logonForm(
                request,
                "Too many failed logons from your address or for this user name. "
                "Wait a few minutes, then try again.",
                code=429,
            )
        login = self.portal.login(UsernamePassword(name.encode(), password), None, IConsoleUser)
        # The password check takes a while; a browser that has gone by then
        # gets no answer (finishing its request would be an error).
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def loggedOn(result):
            _, (user, canChange), _ = result
            attempt.finished()
            if gone:
                return
            key = secrets.token_urlsafe(32).encode()
            self.sessions[key] = {
                "user": user,
                "canChange": canChange,
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
            attempt.failed()
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
            lambda failure: (
                attempt.finished(), log.failure("console logon", failure), self._fail(request)
            )
        )
        return NOT_DONE_YET

    def _fail(self, request):
        request.setResponseCode(500)
        request.write(b"The console could not complete the request; see the server's log.")
        request.finish()

    def _logoff(self, request, session):
        self.sessions.pop(request.getCookie(SESSION_COOKIE), None)
        self._cookie(request, SESSION_COOKIE, b"", maxAge="0")
        log.info("console logoff by {user}", user=session["user"])
        return self._redirect(request, b"logon")
