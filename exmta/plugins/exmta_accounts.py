"""
The Accounts credential checker: BasicAuth against exmta's own account
store, the file C{accounts} next to org.ini that C{exmta account} and
New-Mailbox -Password manage (L{exmta.auth.accounts}).  It is what a
receive connector with BasicAuth asks unless its CredentialCheckers says
otherwise, and it takes no keys.
"""

from twisted.cred.credentials import IUsernamePassword
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.auth.accounts import AccountStore
from exmta.auth.checkers import AccountChecker
from exmta.errors import SettingError
from exmta.interfaces import ICheckerFactory


@implementer(IPlugin, ICheckerFactory)
class Accounts:
    name = "Accounts"
    credentialInterfaces = (IUsernamePassword,)

    def makeChecker(self, settings, organization, reactor):
        for key in settings:
            raise SettingError(
                key,
                "the Accounts checker takes no keys; its accounts are in "
                f"{organization.accountStorePath}, managed with 'exmta account'",
            )
        return AccountChecker(AccountStore.open(organization.accountStorePath), reactor)


accounts = Accounts()
