"""
A client of a transport server's admin endpoint (L{exmta.admin.protocol}):
how the Shell reaches a running server.  It loads nothing of the server.
"""

import socket
import ssl

from exmta.admin.protocol import decodeAnswer, encodeRequest, reachable


class AdminUnavailable(Exception):
    """
    The client cannot reach the admin endpoint; the message says why.
    """


class AdminClient:
    """
    A blocking client of the admin endpoint's UNIX socket, for the Shell.
    """

    def __init__(self, path, timeout=120):
        self.path = path
        self.timeout = timeout

    def _connect(self):
        """
        @return: a socket connected to the endpoint.
        @raise AdminUnavailable: it cannot be reached.
        """
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            with reachable(self.path) as address:
                connection.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
            raise AdminUnavailable(
                f"the server is not running (nothing answers at {self.path})"
            ) from None
        except PermissionError:
            connection.close()
            raise AdminUnavailable(
                f"permission denied on {self.path}: run the Shell as the user the "
                "server runs as, or as root"
            ) from None
        except OSError as error:
            connection.close()
            raise AdminUnavailable(f"cannot reach {self.path}: {error}") from None
        return connection

    def call(self, command, **arguments):
        """
        Send one request and wait for its answer.

        @return: the result.
        @raise AdminUnavailable: the server cannot be reached.
        @raise AdminError: the server refused the request.
        """
        data = encodeRequest(command, arguments)
        with self._connect() as connection:
            try:
                connection.sendall(data)
                response = _readLine(connection)
            except socket.timeout:
                raise AdminUnavailable(
                    f"the server at {self.path} did not answer within {self.timeout} s"
                ) from None
            except OSError as error:
                raise AdminUnavailable(f"the connection to {self.path} failed: {error}") from None
        try:
            return decodeAnswer(response)
        except ValueError:
            raise AdminUnavailable(f"{self.path} answered with something other than JSON") from None


class RemoteAdminClient(AdminClient):
    """
    A blocking client of another server's admin endpoint, over TCP with
    mutual TLS (its AdminBindings): the client shows a certificate the
    organization issued to one of its servers and checks that the
    endpoint's names the server it wants.
    """

    def __init__(self, address, context, serverName, timeout=120):
        """
        @param address: C{(host, port)}.
        @param context: an L{ssl.SSLContext} with the client certificate
            and the organization's authority.
        @param serverName: the Fqdn the endpoint's certificate must name.
        """
        host, port = address
        super().__init__(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}", timeout)
        self.address = address
        self.context = context
        self.serverName = serverName

    def _connect(self):
        try:
            connection = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as error:
            raise AdminUnavailable(f"cannot reach {self.path}: {error}") from None
        try:
            return self.context.wrap_socket(connection, server_hostname=self.serverName)
        except (ssl.SSLError, ssl.CertificateError, OSError) as error:
            connection.close()
            raise AdminUnavailable(f"no TLS session with {self.path}: {error}") from None


def _readLine(connection):
    chunks = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise AdminUnavailable("the server closed the connection without answering")
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks).decode("utf-8")
        chunks.append(chunk)
