"""
What the New Send Connector wizard and a send connector's properties
share: address spaces as the EMC shows them (address, cost, include all
subdomains), smart host authentication with its user name and password,
and Shell commands that take the credential from C{$CredentialObject =
Get-Credential}, as the reference document's own lines do.
"""

from twisted.web.template import tags

from exmta.console.page import Bare, command
from exmta.console.wizard import checkbox, fieldError
from exmta.shell.connector_cmdlets import SEND_USAGES, SMART_HOST_AUTH_MECHANISMS

USAGES = tuple((usage, usage) for usage in SEND_USAGES)

# The EMC's choices on the "Configure smart host authentication settings"
# page, each offered only when the Shell's -SmartHostAuthMechanism takes
# it; Basic Authentication over TLS is a box under Basic Authentication.
AUTHENTICATION = tuple(
    (value, label)
    for value, label in (
        ("None", "None"),
        ("BasicAuth", "Basic Authentication (Basic Authentication requires a user name and "
         "password)"),
        ("ExchangeServer", "Exchange Server Authentication"),
        ("ExternalAuthoritative", "Externally Secured (for example, with IPsec)"),
    )
    if value in SMART_HOST_AUTH_MECHANISMS
)

CREDENTIAL_VARIABLE = "$CredentialObject"
GET_CREDENTIAL = f"{CREDENTIAL_VARIABLE} = Get-Credential"


class _Variable:
    def __init__(self, text):
        self.text = text


# Parameter values written as they are: -Fqdn $null, and the credential.
NULL = _Variable("$null")
CREDENTIAL = _Variable(CREDENTIAL_VARIABLE)


def shellCommand(name, *positional, **parameters):
    """
    L{command}, with two more kinds of value: L{NULL} (C{$null}, which
    clears a setting) and L{CREDENTIAL}; a command given the credential
    comes after the line that asks for it (C{$CredentialObject =
    Get-Credential}), answered by the wizard or form from what was typed.
    """
    words = [command(name, *positional)]
    for parameter, value in parameters.items():
        if isinstance(value, _Variable):
            words.append(f"-{parameter} {value.text}")
        elif value is not None:
            words.append(command("", **{parameter: value}).strip())
    text = " ".join(words)
    if CREDENTIAL in parameters.values():
        return f"{GET_CREDENTIAL}\n{text}"
    return text


# Address spaces.


def addressSpaceRow(text):
    """
    @param text: an address space as Get-SendConnector shows it
        (C{SMTP:*.contoso.com;5}).
    @return: the EMC's row of it: Type, Address, Cost and
        IncludeSubdomains.
    """
    kind, colon, rest = text.partition(":")
    if not colon:
        kind, rest = "SMTP", text
    space, semicolon, cost = rest.rpartition(";")
    if not semicolon:
        space, cost = rest, "1"
    subdomains = kind.upper() == "SMTP" and space.startswith("*.")
    return {
        "Type": kind,
        "Address": space[2:] if subdomains else space,
        "Cost": cost,
        "IncludeSubdomains": subdomains,
    }


def addressSpaceText(row):
    """
    @return: the -AddressSpaces item of an EMC row: C{*}, C{contoso.com;10},
        C{*.contoso.com} when it includes all subdomains.
    """
    address = row["Address"].strip()
    if row["IncludeSubdomains"] and address != "*" and not address.startswith("*."):
        address = "*." + address
    kind = row.get("Type") or "SMTP"
    if kind.upper() != "SMTP":
        address = f"{kind}:{address}"
    cost = row["Cost"].strip() or "1"
    return address if cost == "1" else f"{address};{cost}"


def addressSpaceCells(row):
    return (
        row.get("Type") or "SMTP",
        row["Address"],
        row["Cost"] or "1",
        "Yes" if row["IncludeSubdomains"] else "No",
    )


ADDRESS_SPACE_HEADINGS = ("Type", "Address", "Cost", "Include all subdomains")


# Smart host authentication.


def mechanismOf(choice, overTLS):
    """
    @return: the -SmartHostAuthMechanism value of the EMC's choice, in
        barewords as the reference document writes it
        (C{BasicAuth,BasicAuthRequireTLS}).
    """
    if choice == "BasicAuth" and overTLS:
        return [Bare("BasicAuth"), Bare("BasicAuthRequireTLS")]
    return Bare(choice)


def choiceOf(shown):
    """
    @param shown: SmartHostAuthMechanism as Get-SendConnector shows it
        (C{BasicAuth, BasicAuthRequireTLS}).
    @return: (the EMC's choice, over TLS).
    """
    values = [value.strip() for value in shown.split(",")]
    if "BasicAuth" in values:
        return "BasicAuth", "BasicAuthRequireTLS" in values
    return values[0] or "None", False


def radio(name, options, selected, errors=None):
    """
    @return: radio buttons of C{options} ((value, label, more...)): what
        follows a label (the box under Basic Authentication) is shown
        beneath it.
    """
    choices = []
    for value, label, *more in options:
        button = tags.input(type="radio", name=name, value=value, id=f"{name}-{value}")
        if value == selected:
            button(checked="checked")
        choices.append(tags.li(tags.label(button, " ", label),
                               tags.div(*more, class_="nested") if more else ""))
    return [tags.ul(*choices, class_="choices"), fieldError(name, errors)]


def authenticationFields(values, errors, stored=None):
    """
    @param values: SmartHostAuthMechanism (the choice),
        BasicAuthRequireTLS and UserName.
    @param stored: the name of the credential the connector has, if any.
    @return: the smart host authentication settings: the choices, and the
        user name and password for Basic Authentication.  The password box
        is always empty: a password typed once is never sent back.
    """
    kept = (
        tags.p(
            "The stored credential ", tags.code(stored), " is kept unless you type a new "
            "user name and password.", id="stored-credential",
        )
        if stored
        else ""
    )
    basic = tags.div(
        checkbox("BasicAuthRequireTLS", "Basic Authentication over TLS",
                 values.get("BasicAuthRequireTLS"), errors),
        kept,
        tags.p(tags.label("User name: ", tags.input(name="UserName", id="UserName",
                                                    value=values.get("UserName") or "",
                                                    autocomplete="off")),
               fieldError("UserName", errors)),
        tags.p(tags.label("Password: ", tags.input(name="Password", id="Password", type="password",
                                                   autocomplete="new-password")),
               fieldError("Password", errors)),
        class_="basic",
    )
    options = [
        (value, label, basic) if value == "BasicAuth" else (value, label)
        for value, label in AUTHENTICATION
    ]
    return [
        *radio("SmartHostAuthMechanism", options, values.get("SmartHostAuthMechanism") or "None",
               errors),
        fieldError("AuthenticationCredential", errors),
    ]


def readAuthentication(context, values):
    """
    Read the smart host authentication fields into C{values}; the password
    only when one was typed (so that Back and Next keep it).
    """
    choice = context.arg("SmartHostAuthMechanism", "None")
    values["SmartHostAuthMechanism"] = choice if choice in dict(AUTHENTICATION) else "None"
    values["BasicAuthRequireTLS"] = context.arg("BasicAuthRequireTLS") == "true"
    values["UserName"] = context.arg("UserName").strip()
    password = context.arg("Password")
    if password:
        values["Password"] = password
