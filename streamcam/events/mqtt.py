"""The MQTT sink: events to a broker (paho-mqtt), shaped like Frigate's, never blocking the pipeline.

Topics (``prefix`` defaults to ``streamcam``):

* ``<prefix>/events`` — every event object (``new`` / ``update`` / ``end``), QoS 1;
* ``<prefix>/<stream>/<label>`` — the number of open events of that label, retained;
* ``<prefix>/available`` — ``online``, and ``offline`` as the last will, retained;
* with ``discovery``: ``<discovery_prefix>/sensor/<prefix>_<stream>_<label>/config``, a
  retained Home Assistant sensor per count topic.

:meth:`MqttSink.send` only appends to a bounded queue (the oldest event is dropped and
counted when it is full). One sender thread publishes while connected and waits for the
broker's PUBACK before taking the next; an event in flight when the broker dies is sent
again by paho after it returns (handed to paho once, so not duplicated by the sink). paho's network thread reconnects with
backoff (0.5 s doubling to ``reconnect_max_s``); on each connect the counts are sent again
(a restarted broker without persistence has lost its retained messages).

A connection that fails is counted by reason in ``connect_failures`` (``tls``: the TLS
handshake, e.g. a certificate that ``ca_certs`` does not vouch for; ``auth``: the broker
refused the username or password; ``closed``: it hung up before accepting, as a TLS listener
does to a plain client; ``refused``, ``timeout``, ``dns``, ``network``), its
message kept in ``last_error`` and logged as a warning naming the config key to check (once
per change of message, else at most once a minute); events wait in the queue meanwhile.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any, Optional

from .config import MqttConfig
from .outbox import Outbox

log = logging.getLogger("streamcam.events.mqtt")

_PUBACK_TIMEOUT_S = 2.0
_LOG_EVERY_S = 60.0
"""A connection that keeps failing the same way is logged again at most this often."""
_AUTH_REFUSED = {134, 135}
"""CONNACK reason codes of a refused login: bad user name or password, not authorized (MQTT 3.1.1's 4 and 5)."""


def connect_failure(err: Optional[BaseException], config: MqttConfig) -> tuple[str, str]:
    """``(reason, message)`` for an error raised while connecting: what failed and what to check."""
    where = f"{config.host}:{config.port}"
    if isinstance(err, ssl.SSLCertVerificationError):
        ca = config.ca_certs or "the system's CA certificates"
        return "tls", (f"TLS handshake with {where} failed: certificate verify failed ({err.verify_message or err}): "
                       f"check events.mqtt.ca_certs ({ca}) and that the broker's certificate names {config.host}")
    if isinstance(err, ssl.SSLError):
        return "tls", (f"TLS handshake with {where} failed ({err.reason or err}); is port {config.port} the "
                       "broker's TLS listener (events.mqtt.tls, events.mqtt.port)?")
    if isinstance(err, ConnectionRefusedError):
        return "refused", f"{where} refused the connection: is the broker up, on that port (events.mqtt.port)?"
    if isinstance(err, socket.gaierror):
        return "dns", f"cannot resolve {config.host} (events.mqtt.host): {err}"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timeout", f"no answer from {where} (events.mqtt.host, events.mqtt.port)"
    return "network", f"cannot connect to {where}: {err or 'connection failed'}"


class MqttSink(Outbox):
    """Publishes events and counts to one broker; ``close()`` stops within about a second."""

    def __init__(self, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        if config.host is None:
            raise ValueError("events.mqtt.host: required to send events over MQTT")
        super().__init__(config.queue_size)  # dropped["queue_full"]: the broker was away too long
        self.config = config
        self.prefix = config.prefix
        self.sent = 0
        self.connects = 0
        self._counts: dict[str, str] = {}
        """Count topic -> payload: the latest of each, re-sent on every connect."""
        self._counts_dirty: set[str] = set()
        self._discovered: set[str] = set()
        self._inflight: Optional[tuple[dict[str, Any], int]] = None
        """The event handed to paho and its message id, until the broker acknowledges it."""
        self._acked: set[int] = set()
        self._connected = False
        self.connect_failures: Counter[str] = Counter()
        """Failed connection attempts by reason (see the module doc)."""
        self.last_error: Optional[str] = None
        """What the latest failed attempt said; None once connected."""
        self._refused = False
        self._logged: tuple[Optional[str], float] = (None, 0.0)
        self._stop = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=config.client_id or f"streamcam-{uuid.uuid4().hex[:10]}")
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=config.ca_certs, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(f"{self.prefix}/available", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(config.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        # connect_async: a broker that is down at start is not an error; the loop keeps trying.
        client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        client.loop_start()
        self._thread = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._thread.start()

    # --- the publisher's side -----------------------------------------------------------
    def counts(self, stream: str, counts: dict[str, int]) -> None:
        """Open events per label of a stream (retained topics ``<prefix>/<stream>/<label>``)."""
        with self._cond:
            for label, n in counts.items():
                topic = f"{self.prefix}/{stream}/{label}"
                self._counts[topic] = str(int(n))
                self._counts_dirty.add(topic)
            self._cond.notify()

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        try:
            if self._connected:
                self._client.publish(f"{self.prefix}/available", "offline", qos=1, retain=True)
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    # --- paho's network thread ----------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            self._refused = True  # the disconnect that follows is the same failure
            where = f"{self.config.host}:{self.config.port}"
            if getattr(reason_code, "value", None) in _AUTH_REFUSED:
                self._failed("auth", f"{where} refused the login of user {self.config.username!r}: {reason_code} "
                                     "(check events.mqtt.username and events.mqtt.password)")
            else:
                self._failed("refused", f"{where} refused the connection: {reason_code}")
            return
        self.connects += 1
        self.last_error, self._logged = None, (None, 0.0)
        log.info("mqtt: connected to %s:%d%s", self.config.host, self.config.port, " (TLS)" if self.config.tls else "")
        client.publish(f"{self.prefix}/available", "online", qos=1, retain=True)
        with self._cond:
            self._connected = True
            self._counts_dirty = set(self._counts)
            self._discovered.clear()
            self._cond.notify_all()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this from inside its ``except OSError`` around the connection attempt, so the
        # error being handled is the one that failed it (paho passes none).
        self._failed(*connect_failure(sys.exc_info()[1], self.config))

    def _failed(self, reason: str, message: str) -> None:
        """Count a failed connection attempt and log it (once per new message, else once a minute)."""
        self.last_error = message
        now = time.monotonic()
        if message != self._logged[0] or now - self._logged[1] >= _LOG_EVERY_S:
            self._logged = (message, now)
            log.warning("mqtt: %s; the sink keeps retrying, %d events queued", message, self.queued)
        self.connect_failures[reason] += 1  # last: who sees the count sees the message and the log

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        with self._cond:
            was, self._connected = self._connected, False
            refused, self._refused = self._refused, False
        if self._stop.is_set():
            return
        if was:
            log.warning("mqtt: lost %s:%d (%s); reconnecting", self.config.host, self.config.port, reason_code)
        elif not refused:  # closed before a CONNACK: e.g. a plain client on a TLS listener
            self._failed("closed", f"{self.config.host}:{self.config.port} closed the connection before accepting it "
                                   f"({reason_code}): is it a TLS listener (events.mqtt.tls) or does it refuse this "
                                   "client?")

    # --- the sender thread --------------------------------------------------------------
    def _send_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._stop.is_set() or (self._connected and (
                    self._queue or self._counts_dirty)), timeout=0.5)
                if self._stop.is_set() or not self._connected:
                    continue
                counts = [(t, self._counts[t]) for t in sorted(self._counts_dirty)]
                self._counts_dirty.clear()
                event = self._queue[0] if self._queue else None
            try:
                for topic, payload in counts:
                    self._discover(topic)
                    self._client.publish(topic, payload, qos=1, retain=True)
                if event is not None:
                    if self._deliver(event):
                        with self._cond:
                            if self._queue and self._queue[0] is event:
                                self._queue.popleft()
                        self.sent += 1
                    else:  # not acknowledged yet (the broker went away): paho sends it again on reconnect
                        self._stop.wait(0.05)
            except Exception:  # noqa: BLE001 - one bad publish must not end the sender; logged
                log.exception("mqtt: publishing failed")
                self._stop.wait(0.5)

    def _deliver(self, event: dict[str, Any]) -> bool:
        """Publish one event with QoS 1 and wait for its PUBACK; False when it has not come yet.

        An event is handed to paho once: paho keeps an unacknowledged QoS 1 message and sends it
        again after a reconnect, so publishing it again here would deliver it twice."""
        if self._inflight is None or self._inflight[0] is not event:
            info = self._client.publish(f"{self.prefix}/events", json.dumps(event, separators=(",", ":")), qos=1)
            self._inflight = (event, info.mid)
        mid = self._inflight[1]
        with self._cond:
            self._cond.wait_for(lambda: mid in self._acked or self._stop.is_set(), timeout=_PUBACK_TIMEOUT_S)
            if mid not in self._acked:
                return False
            self._acked.discard(mid)
        self._inflight = None
        return True

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any = None, properties: Any = None
                    ) -> None:
        # Every acknowledged id is noted: the PUBACK of an event can come before _deliver has noted
        # its id (loopback is fast). Retained counts are acknowledged too; the set is trimmed.
        with self._cond:
            if len(self._acked) > 4096:
                keep = self._inflight[1] if self._inflight is not None else None
                self._acked = {m for m in self._acked if m == keep}
            self._acked.add(mid)
            self._cond.notify_all()

    def _discover(self, topic: str) -> None:
        if not self.config.discovery or topic in self._discovered:
            return
        self._discovered.add(topic)
        _, stream, label = topic.rsplit("/", 2)
        uid = f"{self.prefix}_{stream}_{label}".replace("/", "_")
        config = {"name": f"{stream} {label} count", "unique_id": uid, "state_topic": topic,
                  "availability_topic": f"{self.prefix}/available", "unit_of_measurement": label,
                  "icon": "mdi:cctv"}
        self._client.publish(f"{self.config.discovery_prefix}/sensor/{uid}/config", json.dumps(config), qos=1,
                             retain=True)


def stats(sink: Optional[MqttSink]) -> dict[str, Any]:
    if sink is None:
        return {}
    return {"connected": sink.connected, "sent": sink.sent, "queued": sink.queued, "connects": sink.connects,
            "dropped": dict(sink.dropped), "connect_failures": dict(sink.connect_failures),
            "last_error": sink.last_error}
