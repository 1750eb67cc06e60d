"""The ``events:`` section of a pipeline config: lifecycle knobs, media, retention and sinks.

Zones, masks and lines are per stream (``streams[].zones`` ...; :mod:`.zones`); everything
here is for all streams. Every dataclass validates itself, so a bad value is rejected when
the config loads, naming the key (``events.mqtt.port: expected 1-65535, got 0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional


def _bad(obj: object, name: str, why: str) -> ValueError:
    return ValueError(f"{name}: expected {why}, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class MqttConfig:
    """An MQTT broker to send events to (Frigate-shaped topics); ``host`` unset: no MQTT."""

    host: Optional[str] = None
    port: int = 1883
    prefix: str = "streamcam"
    """Topics: ``<prefix>/events`` (every event, QoS 1) and ``<prefix>/<stream>/<label>`` (retained counts)."""
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    """Connect with TLS (port 8883 by convention), verifying the broker's certificate and host name."""
    ca_certs: Optional[str] = None
    """PEM file of the CA(s) that signed the broker's certificate (a private CA; unset: the system's),
    relative to the config's folder; checked when the config loads (found, PEM)."""
    client_id: str = ""
    """Empty: one is generated (two publishers must not share an id: the broker drops the older)."""
    keepalive_s: int = 30
    discovery: bool = False
    """Home Assistant MQTT discovery: a retained config per stream/label count sensor."""
    discovery_prefix: str = "homeassistant"
    queue_size: int = 1000
    """Events kept while the broker is down; older ones are dropped (and counted) beyond it."""
    reconnect_max_s: float = 10.0
    """Reconnect backoff doubles from 0.5 s up to this."""

    def __post_init__(self) -> None:
        if self.host is not None and not self.host:
            raise _bad(self, "host", "a host name or address")
        if not 0 < self.port < 65536:
            raise _bad(self, "port", "1-65535")
        if not re.fullmatch(r"[^#+\s]+", self.prefix) or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise _bad(self, "prefix", "a topic prefix without '#', '+', spaces or a leading/trailing '/'")
        if self.password is not None and self.username is None:
            raise _bad(self, "password", "a username with it (events.mqtt.username)")
        if self.ca_certs is not None and not self.tls:
            raise _bad(self, "ca_certs", "tls: true with it")
        if not 5 <= self.keepalive_s <= 3600:
            raise _bad(self, "keepalive_s", "5-3600 seconds")
        if not 1 <= self.queue_size <= 1_000_000:
            raise _bad(self, "queue_size", "1-1000000 events")
        if not 0.5 <= self.reconnect_max_s <= 600:
            raise _bad(self, "reconnect_max_s", "0.5-600 seconds")


@dataclass(frozen=True)
class WebhookConfig:
    """An HTTP endpoint that gets each event as a JSON POST."""

    url: str
    timeout_s: float = 5.0
    """Per attempt; a slow endpoint delays only its own queue."""
    retries: int = 3
    """Attempts after the first before an event is given up (counted)."""
    backoff_s: float = 0.5
    """Wait before the first retry; doubles per retry."""
    queue_size: int = 1000
    """Events waiting while the endpoint is down; beyond, the oldest are dropped (and counted)."""

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise _bad(self, "url", "an http:// or https:// URL")
        if not 0 < self.timeout_s <= 120:
            raise _bad(self, "timeout_s", "0-120 seconds")
        if not 0 <= self.retries <= 100:
            raise _bad(self, "retries", "0-100")
        if not 0 < self.backoff_s <= 60:
            raise _bad(self, "backoff_s", "0-60 seconds")
        if not 1 <= self.queue_size <= 1_000_000:
            raise _bad(self, "queue_size", "1-1000000 events")


@dataclass(frozen=True)
class RetentionConfig:
    """How long snapshots and clips are kept; the oldest go first."""

    max_age_h: float = 72.0
    """Files older than this are deleted (0: no age limit)."""
    max_bytes: int = 2 << 30
    """Total size of the events folder above which the oldest files are deleted (0: no limit)."""

    def __post_init__(self) -> None:
        if self.max_age_h < 0:
            raise _bad(self, "max_age_h", "hours >= 0")
        if self.max_bytes < 0:
            raise _bad(self, "max_bytes", "bytes >= 0")


@dataclass(frozen=True)
class EventsConfig:
    """Events from confirmed tracks: new / update / end, per object, for the people who watch."""

    enabled: bool = False
    """Derive events (topic ``events/<stream>``) from the published tracks."""
    min_frames: int = 3
    """Frames a confirmed track must be in the frame before its event starts, for streams without zones."""
    lost_frames: int = 10
    """Frames a track may be missing from the detections before its event ends (the stabilizer
    coasts a track unpublished for a while and may bring it back with the same id)."""
    leave_frames: int = 5
    """Frames outside every zone after which the event ends (streams with zones)."""
    leave_margin: float = 0.1
    """In box heights: how far outside a zone the anchor of an object in it must be to count as
    outside (an object standing on the zone's edge, its box bottom jittering, stays in; 0: exact)."""
    handover_distance: float = 1.0
    """A new track this close (centre distance in box heights) to a lost track with an open event
    continues that event, when it appears or when it would open its own (the stabilizer's id
    switches and replacement tracks are not new objects; 0: off)."""
    rejoin: bool = True
    """A track id that carried an event and handed it on (to the id that took over) continues that
    event when it comes back, beside or after the other: the stabilizer found its old track again."""
    update_interval_s: float = 1.0
    """Rate limit of ``update`` events per event: changes in between are merged into the next."""
    score_step: float = 0.05
    """A best score must grow by this much to be an update."""
    stationary_s: float = 10.0
    """An object whose anchor stays within ``stationary_radius`` for this long is stationary."""
    stationary_radius: float = 0.25
    """In box heights: how far a stationary object's anchor may wander (jitter, a swaying lamp)."""
    parked_memory_s: float = 300.0
    """A stationary object whose track is lost and found again at the same place (IoU >= 0.3)
    within this time continues its event: a parked object never re-triggers."""
    still_memory_s: float = 10.0
    """The same for an object whose track never moved but was lost before ``stationary_s``."""
    snapshots: bool = True
    """Keep the event's best frame as JPEG, clean and annotated."""
    clips: bool = True
    """Write a clip with pre- and post-roll as H.264 MP4."""
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    max_clip_s: float = 120.0
    """A clip is cut at this length (an object that stays for hours is not one file of hours)."""
    dir: str = "{run_dir}/events"
    """Where snapshots and clips go (served by the page under /events/)."""
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    webhooks: tuple[WebhookConfig, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.min_frames <= 1000:
            raise _bad(self, "min_frames", "1-1000 frames")
        if not 1 <= self.lost_frames <= 10000:
            raise _bad(self, "lost_frames", "1-10000 frames")
        if not 1 <= self.leave_frames <= 10000:
            raise _bad(self, "leave_frames", "1-10000 frames")
        if not 0 <= self.leave_margin <= 10:
            raise _bad(self, "leave_margin", "0-10 box heights")
        if not 0 <= self.handover_distance <= 10:
            raise _bad(self, "handover_distance", "0-10 box heights")
        if not 0 <= self.update_interval_s <= 3600:
            raise _bad(self, "update_interval_s", "0-3600 seconds")
        if not 0 <= self.score_step <= 1:
            raise _bad(self, "score_step", "0-1")
        if not 0 < self.stationary_s <= 86400:
            raise _bad(self, "stationary_s", "0-86400 seconds")
        if not 0 < self.stationary_radius <= 10:
            raise _bad(self, "stationary_radius", "0-10 box heights")
        if not 0 <= self.still_memory_s <= 86400:
            raise _bad(self, "still_memory_s", "0-86400 seconds")
        if not 0 <= self.parked_memory_s <= 86400:
            raise _bad(self, "parked_memory_s", "0-86400 seconds")
        for name in ("pre_roll_s", "post_roll_s"):
            if not 0 <= getattr(self, name) <= 60:
                raise _bad(self, name, "0-60 seconds")
        if not 1 <= self.max_clip_s <= 3600:
            raise _bad(self, "max_clip_s", "1-3600 seconds")
