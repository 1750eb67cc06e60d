"""A real mosquitto broker on loopback for the MQTT tests (Debian's ``mosquitto``; skipped when absent).

CI installs it (``apt-get install -y mosquitto`` in ``.ci/run``). The broker persists its
sessions to a folder, so a subscriber with a persistent session gets what was published
while the broker was stopped and started again (``restart``).

A broker can listen with TLS (``tls=TlsFiles``: a throwaway CA and a server certificate for
127.0.0.1 made with the ``openssl`` command, :func:`make_tls_files`) and take only users of a
password file (``users``, made with Debian's ``mosquitto_passwd``). mosquitto cannot bind port
0, so the port is one the kernel just handed out to a probe socket; if another process takes it
before the broker binds, the first start picks another and tries again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest


def free_port() -> int:
    """A port free a moment ago. mosquitto cannot be told to pick one and report it (its listener
    needs a number in its config file), so :meth:`Mosquitto.start` retries on EADDRINUSE instead."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA, a server certificate it signed for 127.0.0.1, and another CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    """A CA that signed nothing the broker shows: a client trusting only it must refuse the broker."""


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("the MQTT TLS tests need the openssl command to make a throwaway CA")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_tls_files(folder: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 / localhost signed by it, and an unrelated CA (EC P-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                 "-subj", f"/CN=streamcam test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                       "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=folder)
    return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key", folder / "other-ca.crt")


class Mosquitto:
    """``start()`` and ``stop()`` (SIGTERM: it saves its sessions) a broker on ``port``."""

    def __init__(self, binary: str, folder: Path, users: dict[str, str] | None = None,
                 tls: TlsFiles | None = None) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.tls = tls
        self.conf = folder / "mosquitto.conf"
        self._auth = "allow_anonymous true\n"
        if users:  # a password file made by Debian's mosquitto_passwd: anonymous clients are refused
            pw = folder / "passwd"
            for user, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b",
                                *([] if pw.exists() else ["-c"]), str(pw), user, password], check=True)
            pw.chmod(0o600)
            self._auth = f"allow_anonymous false\npassword_file {pw}\n"
        self._started = False
        self._write_conf()
        self.proc: subprocess.Popen | None = None

    def _write_conf(self) -> None:
        # Started as root, mosquitto drops to user "mosquitto", who cannot read this private folder:
        # it stays the user who runs the tests (the option is ignored for other users).
        tls = (f"cafile {self.tls.ca}\ncertfile {self.tls.cert}\nkeyfile {self.tls.key}\n"
               if self.tls is not None else "")
        self.conf.write_text(f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\n{tls}{self._auth}"
                             f"persistence true\npersistence_location {self.folder}/\nautosave_interval 1\n")

    def start(self) -> None:
        # The first start may find its port taken since it was probed: then another port, up to 5
        # tries. Later starts (a restart) keep the port clients know.
        for attempt in range(5):
            log = self.folder / "mosquitto.log"
            seen = log.stat().st_size if log.exists() else 0
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                         stderr=open(log, "ab"))
            if self._wait_listening(log, seen):
                self._started = True
                return
            said = log.read_bytes()[seen:].decode(errors="replace")
            if self._started or "Address already in use" not in said:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {said[-500:]}")
            self.port = free_port()
            self._write_conf()
        raise RuntimeError("mosquitto found its port taken 5 times")

    def _wait_listening(self, log: Path, seen: int) -> bool:
        """True once this broker says it runs (the port is its own, not another process's) and the
        port accepts connections; False if it exited first."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if b" running" in log.read_bytes()[seen:]:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _binary() -> str:
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if binary is None:
        pytest.skip("the MQTT tests need Debian's mosquitto (apt-get install -y mosquitto)")
    return binary


@contextlib.contextmanager
def _broker(users: Optional[dict[str, str]] = None, tls: Optional[TlsFiles] = None,
            folder: Optional[Path] = None) -> Iterator[Mosquitto]:
    binary = _binary()
    folder = folder or Path(tempfile.mkdtemp(prefix="sc-mqtt-"))
    broker = Mosquitto(binary, folder, users=users, tls=tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mosquitto_auth() -> Iterator[Mosquitto]:
    """A broker that takes only user ``cam`` with password ``s3cret``."""
    with _broker({"cam": "s3cret"}) as broker:
        yield broker


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    with _broker() as broker:
        yield broker


@pytest.fixture
def mosquitto_tls() -> Iterator[Mosquitto]:
    """A broker whose only listener is TLS, with a certificate from a throwaway CA (``broker.tls``)."""
    folder = Path(tempfile.mkdtemp(prefix="sc-mqtts-"))
    tls = make_tls_files(folder / "pki")
    with _broker(tls=tls, folder=folder) as broker:
        yield broker


class Subscriber:
    """A paho client with a persistent session that records every message, by topic."""

    def __init__(self, port: int, topics: tuple[str, ...], name: str = "test-sub", ca: Optional[Path] = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{port}", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=1)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))

        def on_connect(client, userdata, flags, rc, props=None):
            for t in topics:
                client.subscribe(t, qos=1)

        def on_subscribe(client, userdata, mid, rcs, props=None):
            self.subscribed += 1

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = lambda client, userdata, m: self.messages.append((m.topic, m.payload, m.retain))
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
