"""
A real etcd (Debian's etcd-server) for end-to-end tests: one member on
loopback ports chosen free, its data in a temporary folder; it can be
stopped and started again on the same ports and data.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from tests.e2e.harness import STARTUP_TIMEOUT, freePort

ETCD = "/usr/bin/etcd"


class EtcdProcess:
    """
    @ivar url: the client URL, C{http://127.0.0.1:PORT} (C{https} with
        C{tls}).
    """

    def __init__(self, folder, tls=None, extra=()):
        """
        @param tls: C{(certificate file, key file, CA file)} to serve https
            with, asking clients for a certificate the CA signed.
        """
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.clientPort = freePort()
        self.peerPort = freePort()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.clientPort}"
        peer = f"http://127.0.0.1:{self.peerPort}"
        self.command = [
            ETCD,
            "--name", "test",
            "--data-dir", os.path.join(folder, "data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}",
            "--logger", "zap",
            "--log-outputs", os.path.join(folder, "etcd.log"),
            *extra,
        ]
        if tls:
            certificate, key, authority = tls
            self.command += [
                "--cert-file", certificate, "--key-file", key,
                "--trusted-ca-file", authority, "--client-cert-auth",
            ]
        self._tls = tls
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._awaitReady()

    def _awaitReady(self):
        # etcd answers its gateway once it has elected itself leader.
        context = None
        if self._tls:
            import ssl

            context = ssl.create_default_context(cafile=self._tls[2])
            context.load_cert_chain(self._tls[0], self._tls[1])
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self.process.poll() is None, f"etcd ended: {self.log()}"
            try:
                self.post("/v3/kv/range", {"key": "AA=="}, context=context)
                return
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"etcd did not start: {self.log()}"
                time.sleep(0.05)

    def post(self, path, body, context=None):
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            return json.load(answer)

    def log(self):
        try:
            with open(os.path.join(self.folder, "etcd.log")) as handle:
                return handle.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.process = None
