"""A real mosquitto broker on loopback for the MQTT tests (Debian's ``mosquitto``; skipped when absent).

CI installs it (``apt-get install -y mosquitto`` in ``.ci/run``). The broker persists its
sessions to a folder, so a subscriber with a persistent session gets what was published
while the broker was stopped and started again (``restart``).
"""

from __future__ import annotations

import contextlib
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


class Mosquitto:
    """``start()``, ``stop()`` (SIGTERM: it saves its sessions) and ``kill()`` a broker on ``port``."""

    def __init__(self, binary: str, folder: Path, users: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.auth = "allow_anonymous true\n"
        if users:  # a password file made by Debian's mosquitto_passwd: anonymous clients are refused
            pw = folder / "passwd"
            for user, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b",
                                *([] if pw.exists() else ["-c"]), str(pw), user, password], check=True)
            pw.chmod(0o600)
            self.auth = f"allow_anonymous false\npassword_file {pw}\n"
        self.port = 0
        self.started = False
        self.proc: subprocess.Popen | None = None

    def _configure(self, port: int) -> None:
        self.port = port
        # Started as root, mosquitto drops to user "mosquitto", who cannot read this private folder:
        # it stays the user who runs the tests (the option is ignored for other users).
        self.conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n{self.auth}persistence true\n"
                             f"persistence_location {self.folder}/\nautosave_interval 1\n")

    def start(self) -> None:
        """Start the broker; the first start picks its port (another on EADDRINUSE: someone took the
        free port first), a restart keeps it (its clients know that one)."""
        for _ in range(1 if self.started else 5):
            if not self.started:
                self._configure(free_port())
            if self._start_once():
                self.started = True
                return
        raise RuntimeError(f"mosquitto could not listen on a free port: {self._log()[-500:]}")

    def _log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start_once(self) -> bool:
        """True once the broker listens; False when its port was taken; raises on other failures."""
        log_before = len(self._log())
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    log = self._log()[log_before:]
                    if "Address already in use" in log and not self.started:
                        return False
                    raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {log[-500:]}")
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
def _broker(users: Optional[dict[str, str]] = None) -> Iterator[Mosquitto]:
    binary = _binary()
    folder = Path(tempfile.mkdtemp(prefix="sc-mqtt-"))
    broker = Mosquitto(binary, folder, users=users)
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


class Subscriber:
    """A paho client with a persistent session that records every message, by topic."""

    def __init__(self, port: int, topics: tuple[str, ...], name: str = "test-sub") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{port}", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=1)

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
