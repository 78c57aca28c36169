"""
The PasswdFile credential checker: BasicAuth against a passwd-file of
argon2 hashes, such as the one Dovecot's C{passdb passwd-file} reads, so
that SMTP submission and IMAP share one password per user
(L{exmta.auth.passwdfile} describes the file).

    [ReceiveConnector Client HubA]
    AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
    CredentialCheckers = PasswdFile, Accounts

    [CredentialChecker PasswdFile]
    Path = /etc/dovecot/users      ; relative paths are from org.ini's folder
"""

import os

from twisted.cred.credentials import IUsernamePassword
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.auth.passwdfile import PasswdFileChecker, readPasswdFile
from exmta.errors import SettingError
from exmta.interfaces import ICheckerFactory


@implementer(IPlugin, ICheckerFactory)
class PasswdFile:
    name = "PasswdFile"
    credentialInterfaces = (IUsernamePassword,)

    def makeChecker(self, settings, organization, reactor):
        path = None
        for key, value in settings.items():
            if key.lower() != "path":
                raise SettingError(key, "unknown key for PasswdFile; known keys are: Path")
            if not value.strip():
                raise SettingError(key, "is empty; give the passwd-file's path")
            path = os.path.join(organization.folder, os.path.expanduser(value.strip()))
        if path is None:
            raise ValueError("PasswdFile needs Path = <the passwd-file>")
        # Read once now, so that a server refuses to start on a broken file.
        readPasswdFile(path)
        return PasswdFileChecker(path, reactor)


passwdFile = PasswdFile()
