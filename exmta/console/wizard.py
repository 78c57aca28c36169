"""
The EMC's wizards: pages one after another (Back, Next), a summary of
what will be done with the Shell command that will run, and the
completion page showing the command that ran.

A wizard keeps what was typed in the administrator's session, not in the
pages, so a password entered on one page never goes back to the browser:
L{Wizard.answers} passes it to the Shell's prompts (C{Get-Credential})
when the command runs, and the command text shows only
C{$CredentialObject = Get-Credential}, as the reference document's Shell
lines do.

When the Shell refuses the command, the wizard goes back to the page
holding the field at fault and shows the Shell's own words beside it.
"""

import re

from twisted.web.template import tags

from exmta.console.page import completion

# "[SendConnector x] AddressSpaces: ..." (the configuration's checks),
# "-AuthenticationCredential: ..." (a cmdlet's own) and "Cannot bind
# parameter 'Cost'..." (the Shell's binding).
_SECTION_KEY = re.compile(r"^\[[^\]]*\] (\w+): ")
_CMDLET_PARAMETER = re.compile(r"^-(\w+): ")
_PARAMETER = re.compile(r"parameter '(\w+)'", re.IGNORECASE)


def fieldOf(message):
    """
    @return: the org.ini key or Shell parameter a Shell error names, or
        L{None}.
    """
    for pattern in (_SECTION_KEY, _CMDLET_PARAMETER, _PARAMETER):
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def shellMessage(failure):
    """
    @return: the Shell's words for why a command failed, without the
        position PowerShell adds for a terminal.
    """
    return getattr(failure.value, "message", None) or failure.getErrorMessage()


def field(name, label, value="", errors=None, **attributes):
    """
    @return: a labelled text input, with the error for C{name} beside it.
    """
    return tags.p(
        tags.label(label, " ", tags.input(name=name, id=name, value=value or "", **attributes)),
        fieldError(name, errors),
    )


def choice(name, label, options, selected, errors=None):
    """
    @return: a labelled select of C{options} (value, text) pairs.
    """
    return tags.p(
        tags.label(
            label,
            " ",
            tags.select(name=name, id=name)(
                *(
                    tags.option(text, value=value, selected="selected")
                    if value == selected
                    else tags.option(text, value=value)
                    for value, text in options
                )
            ),
        ),
        fieldError(name, errors),
    )


def checkbox(name, label, checked, errors=None):
    box = tags.input(type="checkbox", name=name, id=name, value="true")
    if checked:
        box(checked="checked")
    return tags.p(tags.label(box, " ", label), fieldError(name, errors))


def fieldError(name, errors):
    message = (errors or {}).get(name)
    if not message:
        return ""
    return tags.span(message, class_="field-error", id=f"{name}-error")


class WizardPage:
    """
    One page of a wizard.

    A page defines C{render(context, state, errors)}, returning the
    page's form contents filled from C{state}.

    @cvar title: the page's name in the wizard's list of pages.
    @cvar fields: the org.ini keys and Shell parameters this page sets, so
        that the Shell's refusal naming one of them is shown here.
    """

    title = ""
    fields = ()

    def read(self, context, state, action):
        """
        Read the posted fields into C{state}.

        @param action: the button pressed: C{"next"}, C{"back"}, or the
            name of one of this page's own buttons (C{"add"}...).
        @return: {field: message} of what is wrong, empty when nothing is.
        """
        return {}

    def shown(self, state):
        """
        @return: whether the wizard shows this page for what was chosen on
            the pages before (the EMC skips the pages a choice makes
            moot: an Internal receive connector has no local network
            settings to give).
        """
        return True


class Wizard:
    """
    A wizard at C{/ecp/<path>}: GET starts it again, POST moves through it.
    A wizard defines C{command(state)}, returning the Shell text to run.

    @cvar path: the route's first segment.
    @cvar title: the wizard's title (C{"New Send Connector"}).
    @cvar pages: its L{WizardPage}s; after them come the summary (whose
        button runs the command) and the completion page.
    @cvar summaryTitle: the summary's name (the EMC's "New Connector").
    """

    path = ""
    title = ""
    pages = ()
    finishLabel = "New"
    summaryTitle = "Summary"

    def initialState(self, context, rest):
        """
        @return: the state a new run starts from (a dict), or L{None} when
            C{rest} names nothing this wizard works on.
        """
        return {}

    def answers(self, state):
        """
        @return: the lines the Shell's prompts read (Get-Credential's user
            name and password), in order.
        """
        return ()

    def routes(self):
        return {(b"GET", self.path): self.start, (b"POST", self.path): self.step}

    # The wizard's state in the session.

    def _state(self, context):
        return context.session.setdefault("wizards", {}).get(self.path)

    def start(self, context, rest):
        state = self.initialState(context, rest)
        if state is None:
            return context.refuse(404, "There is no such object.")
        context.session.setdefault("wizards", {})[self.path] = {"page": 0, "values": state}
        return self._show(context, {})

    def step(self, context, rest):
        run = self._state(context)
        if run is None:
            return context.redirect(context.url(self.path))
        action = context.arg("action", "next")
        if action == "cancel":
            context.session["wizards"].pop(self.path, None)
            return context.redirect(context.base)
        index = run["page"]
        if index < len(self.pages):
            errors = self.pages[index].read(context, run["values"], action)
            if errors or action not in ("next", "back"):
                return self._show(context, errors)
        if action == "back":
            run["page"] = self._following(run, index, -1)
            return self._show(context, {})
        if index < len(self.pages):
            run["page"] = self._following(run, index, 1)
            return self._show(context, {})
        if action != "next":
            return self._show(context, {})
        return self._finish(context, run)

    def _following(self, run, index, step):
        """
        @return: the index of the next page shown after C{index} in the
            direction C{step} (the summary is C{len(pages)}); the first
            page is always shown.
        """
        index += step
        while 0 < index < len(self.pages) and not self.pages[index].shown(run["values"]):
            index += step
        return max(0, index)

    def _finish(self, context, run):
        text = self.command(run["values"])

        def done(_):
            context.session["wizards"].pop(self.path, None)
            return completion(context, self.title, text, *self.completed(context, run["values"]))

        def refused(failure):
            message = shellMessage(failure)
            name = fieldOf(message)
            for index, page in enumerate(self.pages):
                if name in page.fields and page.shown(run["values"]):
                    run["page"] = index
                    return self._show(context, {name: message})
            return self._show(context, {"": message})

        result = context.change(text, answers=self.answers(run["values"]))
        return result.addCallbacks(done, refused)

    def completed(self, context, state):
        """
        @return: what the completion page shows below the command (links
            onward).
        """
        return ()

    # Pages.

    def _show(self, context, errors):
        run = self._state(context)
        index = run["page"]
        steps = tags.ol(
            *(
                tags.li(tags.strong(title) if n == index else title)
                for n, title in [
                    (n, p.title) for n, p in enumerate(self.pages) if p.shown(run["values"])
                ]
                + [(len(self.pages), self.summaryTitle)]
            ),
            class_="steps",
        )
        general = errors.get("")
        problem = tags.p(general, class_="error", id="error") if general else ""
        if index < len(self.pages):
            page = self.pages[index]
            body = page.render(context, run["values"], errors)
            heading = page.title
            forward = tags.button("Next", type="submit", name="action", value="next", id="next")
        else:
            heading = self.summaryTitle
            body = [
                tags.p("The wizard will run this Exchange Management Shell command:"),
                tags.pre(self.command(run["values"]), class_="command", id="summary"),
            ]
            forward = tags.button(
                self.finishLabel, type="submit", name="action", value="next", id="finish"
            )
        # The forward button comes first, so that Enter in a field means
        # Next, as in the EMC; the style shows Back before it.
        buttons = tags.p(class_="buttons")(
            forward,
            tags.button("Back", type="submit", name="action", value="back", id="back")
            if index
            else "",
            tags.button("Cancel", type="submit", name="action", value="cancel", id="cancel"),
        )
        return context.render(
            self.title,
            steps,
            tags.h2(heading),
            problem,
            context.form(context.url(self.path), id="wizard")(*body, buttons),
        )
