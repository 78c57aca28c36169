"""
Transport agents: the agents of org.ini in priority order
(Get-TransportAgent), Enable-TransportAgent, Disable-TransportAgent and
Set-TransportAgent -Priority.
"""

from twisted.web.template import tags

from exmta.console.page import Bare, command, completion
from exmta.console.servers import notFound
from exmta.console.wizard import shellMessage
from exmta.shell.parser import ShellSyntaxError
from exmta.shell.runtime import ShellError


def transportAgents(context, rest):
    if rest:
        return notFound(context)
    return context.invoke("Get-TransportAgent").addCallback(
        lambda agents: context.render("Transport Agents", *_body(context, agents))
    )


def _body(context, agents):
    url = context.url("transportagents")
    rows = []
    for agent in agents:
        state = context.form(url, class_="inline")(
            tags.input(type="hidden", name="Identity", value=agent.Identity),
            tags.input(type="hidden", name="action",
                       value="disable" if agent.Enabled else "enable"),
            tags.button("Disable" if agent.Enabled else "Enable", type="submit",
                        id=f"state-{agent.Identity}"),
        )
        priority = context.form(url, class_="inline")(
            tags.input(type="hidden", name="Identity", value=agent.Identity),
            tags.input(type="hidden", name="action", value="priority"),
            tags.input(name="Priority", value=str(agent.Priority), size="4",
                       id=f"priority-{agent.Identity}"),
            tags.button("Set priority", type="submit", id=f"set-priority-{agent.Identity}"),
        )
        rows.append(
            tags.tr(
                tags.td(agent.Identity),
                tags.td(str(agent.Enabled)),
                tags.td(str(agent.Priority)),
                tags.td(state, " ", priority),
            )
        )
    header = tags.tr(*(tags.th(h) for h in ("Identity", "Enabled", "Priority", "")))
    return [
        tags.p("Agents run in priority order, lowest number first "
               "(Install-TransportAgent in the Shell adds one)."),
        tags.table(id="transport-agents")(header, *rows),
    ]


def changeAgent(context, rest):
    if rest:
        return notFound(context)
    identity = context.arg("Identity")
    action = context.arg("action")
    if action == "enable":
        text = command("Enable-TransportAgent", identity)
    elif action == "disable":
        text = command("Disable-TransportAgent", identity)
    elif action == "priority":
        text = command("Set-TransportAgent", identity, Priority=Bare(context.arg("Priority").strip()))
    else:
        return notFound(context)

    def refused(failure):
        failure.trap(ShellError, ShellSyntaxError)
        return context.invoke("Get-TransportAgent").addCallback(
            lambda agents: context.render(
                "Transport Agents",
                tags.p(shellMessage(failure), class_="error", id="error"),
                *_body(context, agents),
            )
        )

    return context.change(text).addCallbacks(
        lambda _: context.invoke("Get-TransportAgent").addCallback(
            lambda agents: completion(context, "Transport Agents", text, *_body(context, agents))
        ),
        refused,
    )


ROUTES = {(b"GET", "transportagents"): transportAgents, (b"POST", "transportagents"): changeAgent}
NAVIGATION = (("Server Configuration", "Transport Agents", "transportagents"),)
