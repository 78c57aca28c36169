"""
What every page of the console is given: L{Context}, one logged-on
administrator's request, with the page frame (the EMC's tree on the
left), forms that carry the CSRF token, and the Shell.

A page module of the console (L{exmta.console.resource.PAGE_MODULES})
defines C{ROUTES}, a mapping of C{(method, first path segment)} to a
handler called with a L{Context} and the rest of the path (a list of
text), and C{NAVIGATION}, the entries it adds to the tree as
C{(section, label, path)}.  A handler renders its answer with
L{Context.render} or L{Context.redirect} and may return a Deferred.

Every change goes through L{Context.change}: it runs the Shell command
the page built with L{command} (the same cmdlet, runtime and validation
as C{exmta shell}), logs it with the administrator's name, and has the
running server read org.ini again, as the EMC's changes apply at once.
Reads go through L{Context.invoke}.  Both run in the console's own
thread: the Shell's cmdlets block (org.ini's lock, the admin endpoint,
which this very reactor answers).
"""

import re
from urllib.parse import quote as urlquote

from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET
from twisted.web.template import Element, TagLoader, renderElement, tags

from exmta.shell.parser import ShellSyntaxError, parse

log = Logger()

STYLE = (
    "body{font-family:sans-serif;margin:0;display:flex;min-height:100vh}"
    "#tree{background:#e8eef7;padding:1em;min-width:14em;border-right:1px solid #99a}"
    "#tree h2{font-size:.9em;margin:1em 0 .3em}#tree ul{list-style:none;padding-left:.8em;margin:0}"
    "#tree a{text-decoration:none}#content{padding:1em 2em;flex:1}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#e8eef7}.error{color:#a00}.field-error{color:#a00;margin-left:.5em}"
    "pre.command{background:#012456;color:#eee;padding:.8em;white-space:pre-wrap}"
    "form.inline{display:inline}.buttons{display:flex;gap:.5em}"
    "#back{order:1}#next,#finish{order:2}#cancel{order:3}"
    ".fields{display:grid;grid-template-columns:repeat(auto-fill,minmax(15em,1fr));"
    "gap:.4em 1.5em;max-width:64em;margin:.5em 0}.fields p{margin:0}"
    ".fields label{display:flex;flex-direction:column;font-size:.85em}"
    "table.data{font-size:.85em}td.LastError,td.RecipientStatus{max-width:24em}"
    "ul.tabs{list-style:none;display:flex;gap:1.5em;padding:0;border-bottom:1px solid #99a}"
    "ul.choices{list-style:none;padding-left:0}.nested{margin-left:1.8em}"
    ".default{position:absolute;left:-9999px}p.tabs a,p.tabs strong{margin-right:1em}"
    "fieldset{margin:.5em 0;border:1px solid #99a}.unsupported{color:#666}"
)

SECTIONS = (
    "Organization Configuration",
    "Server Configuration",
    "Recipient Configuration",
    "Toolbox",
)


def quote(value):
    """
    @return: C{value} as a PowerShell single-quoted string, in which
        nothing is special but the quote itself (doubled).
    """
    text = str(value)
    for mark in "'\u2018\u2019\u201a\u201b":
        text = text.replace(mark, mark * 2)
    return f"'{text}'"


class Bare(str):
    """
    A value written without quotes when the Shell reads it back as the
    same text, as the reference document's lines write names of settings
    and addresses (C{-Usage Custom -Bindings 10.2.3.4:25}); quoted
    otherwise.
    """


# What may be a bareword at all; the Shell's parser then decides.
_BAREWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_/*\[\]-]*\Z")
_NUMBER = re.compile(r"[0-9]+([KMG]B)?\Z", re.IGNORECASE)


def _bare(text):
    if not _BAREWORD.match(text):
        return quote(text)
    try:
        (pipeline,) = parse(f"X {text}").statements
        (read,) = pipeline.elements[0].elements
    except (ShellSyntaxError, ValueError):
        return quote(text)
    if getattr(read, "bareword", False) and read.value == text:
        return text
    # A count or a size (C{20MB}): the Shell reads the number it means.
    if _NUMBER.match(text) and isinstance(getattr(read, "value", None), int):
        return text
    return quote(text)


def command(name, *positional, **parameters):
    """
    The text of one Shell command: C{command("Set-SendConnector",
    "To Internet", Enabled=False)} is C{Set-SendConnector 'To Internet'
    -Enabled $false}.

    A parameter whose value is L{None} is left out; C{True}/C{False} are
    C{$true}/C{$false}; a list or tuple is a comma list (C{@()} when
    empty); integers are written as they are, L{Bare} values as barewords
    where they can be; everything else is quoted.
    """
    words = [name]
    words.extend(_argument(value) for value in positional)
    for parameter, value in parameters.items():
        if value is None:
            continue
        words.append(f"-{parameter}")
        words.append(_argument(value))
    return " ".join(words)


def _argument(value):
    if value is True:
        return "$true"
    if value is False:
        return "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_bare(v) if isinstance(v, Bare) else quote(v) for v in value) or "@()"
    if isinstance(value, Bare):
        return _bare(value)
    return quote(value)


class Context:
    """
    One request of a logged-on administrator.

    @ivar request: the twisted.web request.
    @ivar user: the administrator's user principal name.
    @ivar canChange: whether the user may change anything (members of
        View-Only Organization Management may not).
    """

    def __init__(self, console, request, session):
        self.console = console
        self.request = request
        self.session = session
        self.user = session["user"]
        self.canChange = session["canChange"]
        self.gone = False
        self.reloadProblem = None

    def disconnected(self):
        """
        The browser has gone: answers from now on are not written (the
        Shell's work may end after it has).
        """
        self.gone = True

    # Addresses.

    @property
    def base(self):
        """
        The console's own path, ending with C{/} (C{/ecp/}).
        """
        return "/" + "".join(part.decode() + "/" for part in self.request.prepath)

    def url(self, *parts):
        """
        @return: the path of a page of the console, its parts escaped.
        """
        return self.base + "/".join(urlquote(str(part), safe="") for part in parts)

    # Form fields.

    def arg(self, name, default=""):
        """
        @return: the text of a form field (UTF-8), or C{default}.
        """
        values = self.request.args.get(name.encode())
        if not values:
            return default
        return values[0].decode("utf-8", "replace")

    def args(self, name):
        """
        @return: every value of a form field, as text.
        """
        return [v.decode("utf-8", "replace") for v in self.request.args.get(name.encode(), [])]

    def form(self, action, *children, **attributes):
        """
        @return: a POST form to C{action} (a path of L{url}) carrying the
            session's CSRF token.
        """
        return tags.form(method="post", action=action, **attributes)(
            tags.input(type="hidden", name="csrf", value=self.session["csrf"].decode()),
            *children,
        )

    # Answers.

    def render(self, title, *body, code=200, head=()):
        """
        Answer with a whole page: the console's tree and C{body}, every
        string of which twisted.web.template escapes, with the console's
        script (L{exmta.console.enhance}) and C{head}'s elements.
        """
        if self.gone:
            return NOT_DONE_YET
        self.request.setResponseCode(code)
        script = tags.script(src=self.base + "static/console.js", defer="defer")
        renderElement(
            self.request,
            page(title, self._navigation(), body, self._banner(), (script, *head)),
        )
        return NOT_DONE_YET

    def redirect(self, path):
        """
        Answer with a 303 to C{path} (from L{url}).
        """
        if self.gone:
            return NOT_DONE_YET
        self.request.setResponseCode(303)
        self.request.setHeader(b"location", path.encode())
        self.request.finish()
        return NOT_DONE_YET

    def refuse(self, code, message):
        return self.render("Refused", tags.p(message, class_="error", id="error"), code=code)

    def _banner(self):
        logoff = self.form(self.base + "logoff", class_="inline")(
            tags.button("Log off", type="submit", id="logoff")
        )
        role = "" if self.canChange else " (View-Only Organization Management)"
        return tags.p("Logged on as ", tags.strong(self.user, id="user"), role, " ", logoff)

    def _navigation(self):
        entries = {section: [] for section in SECTIONS}
        for module in self.console.pageModules:
            for section, label, path in getattr(module, "NAVIGATION", ()):
                entries.setdefault(section, []).append((label, path))
        tree = [tags.p(tags.a("Dashboard", href=self.base, id="dashboard-link"))]
        for section, links in entries.items():
            if not links:
                continue
            tree.append(tags.h2(section))
            tree.append(
                tags.ul(*(tags.li(tags.a(label, href=self.base + path)) for label, path in links))
            )
        return tags.div(*tree, id="tree")

    # The Shell.

    def invoke(self, text):
        """
        Run Shell statements that change nothing: reads, of org.ini or,
        through the admin endpoint, of the running server.

        @return: a Deferred firing with the objects they output, or failing
            with the Shell's error (L{exmta.shell.runtime.ShellError} or its
            syntax error).
        """
        return self.console.runShell(text)

    def change(self, text, answers=(), reload=True):
        """
        Run a Shell command that changes the organization, as this user,
        then have the running server read org.ini again.

        @param answers: the lines the command's prompts read
            (C{Get-Credential}'s user name and password), never shown or
            logged.
        @param reload: whether the command changed org.ini; the queue's
            actions act on the running server itself and need no reload.
        @return: a Deferred firing with the command's output objects, or
            failing with the Shell's error; the command and its outcome
            are logged either way.  If the running server refused the
            new org.ini, L{reloadProblem} says why.
        """
        if not self.canChange:
            raise PermissionError("View-Only Organization Management changes nothing")

        def ran(output):
            log.info(
                "console: {user} ran: {command}", user=self.user, command=text
            )
            if reload:
                self.reloadProblem = self.console.reload()
            return output

        def failed(failure):
            log.info(
                "console: {user} ran: {command} -- refused: {error}",
                user=self.user,
                command=text,
                error=failure.getErrorMessage(),
            )
            return failure

        return self.console.runShell(text, answers).addCallbacks(ran, failed)


def completion(context, title, text, *more):
    """
    Answer with a wizard's last page, as the EMC's: the Shell command that
    ran, to copy.
    """
    problem = ""
    if context.reloadProblem:
        problem = tags.p(
            "The running server refused the new configuration and runs on under the old "
            "one: ",
            context.reloadProblem,
            class_="error",
            id="reload-problem",
        )
    return context.render(
        title,
        tags.p("The following Exchange Management Shell command completed successfully:"),
        tags.pre(text, class_="command", id="command"),
        problem,
        *more,
    )


def page(title, navigation, body, banner, head=()):
    """
    @param head: more elements of the page's head.
    @return: an L{Element} of a whole page; twisted.web.template escapes
        every string in it.
    """
    return Element(
        loader=TagLoader(
            tags.html(lang="en")(
                tags.head(
                    tags.meta(charset="utf-8"),
                    tags.title(title, " - exmta"),
                    tags.style(STYLE),
                    *head,
                ),
                tags.body(navigation, tags.div(banner, tags.h1(title), *body, id="content")),
            )
        )
    )
