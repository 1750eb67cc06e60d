"""Typed pipeline configuration, loaded from YAML and validated before anything starts.

Every field is declared here with a one-line *why*. Loading rejects unknown keys,
wrong types and bad endpoints, naming the full key (``processor.cam_threshold``)
and the value, so a typo never becomes a silently ignored setting.

Why one module of ~670 lines: every key a user can write is declared here, in the order of the
YAML, each with its *why* and its range check beside it, so one file answers "what can I set";
the sections that belong to a room live there (the stabilizer's in
``streamcam/stabilizer/config.py``, events and zones in ``streamcam/events/``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from .errors import ConfigError, StreamcamError
from .events.config import EventsConfig
from .events.zones import LineConfig, MaskConfig, ZoneConfig
from .stabilizer.config import StabilizerConfig
from .transport import check_endpoint

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ENDPOINT_NAMES = ("frames", "results", "publish", "work", "detected", "control")
WILDCARD_HOSTS = ("*",)
"""ZeroMQ's bind-to-all name: stages connect with the same endpoint string, and nothing connects to ``*``."""

class FieldError(ValueError):
    """A value out of its field's range, raised by the dataclass that declares the field (its
    ``__post_init__``); loading a config names the full key (``streams[0].source.fps: ...``)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}" if field else why)
        self.field, self.why = field, why


SourceKind = Literal["synthetic", "camera", "file", "url", "thermal", "images"]


@dataclass(frozen=True)
class SourceConfig:
    """Where one stream's frames come from."""

    kind: SourceKind = "synthetic"
    """synthetic (the embedded IR scene), camera (index), file, url (rtsp/http), thermal (.npy/TIFF), images."""
    uri: Optional[str] = None
    """Camera index, file path, URL, or a glob/folder for thermal and image sequences."""
    width: int = 640
    """Synthetic scene width; for cameras, the requested capture width (0 = device default)."""
    height: int = 480
    fps: float = 30.0
    """Frame rate for synthetic/sequence sources and the pacing target when the source has none."""
    pacing: Literal["source", "fast"] = "source"
    """source: deliver at the source's frame rate (live behaviour); fast: as fast as possible."""
    loop: bool = True
    """Files and sequences start again at the end (a demo or soak never runs dry)."""
    seed: int = 7
    """Synthetic scene seed: the same seed gives the same people, paths and noise."""
    people: int = 4
    """Synthetic scene: people walking at a time."""
    confusers: int = 3
    """Synthetic scene: warm non-person objects (cars, lamps, animals)."""
    send_raw: bool = False
    """Thermal sources: also send the 16-bit radiometric frame, not only the 8-bit AGC image."""
    reconnect_initial_s: float = 0.5
    """First wait before reopening a dropped camera or stream; doubles up to reconnect_max_s."""
    reconnect_max_s: float = 10.0

    def __post_init__(self) -> None:
        uri = self.uri
        if self.kind != "synthetic" and not uri:
            raise FieldError("uri", f"required for kind {self.kind!r}")
        if self.kind == "camera" and uri is not None and not str(uri).isdigit() and not str(uri).startswith("/dev/"):
            raise FieldError("uri", f"camera expects a device index or /dev path, got {uri!r}")
        if self.kind == "url" and not re.match(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", str(uri)):
            raise FieldError("uri", f"expected an rtsp:// or http(s):// URL, got {uri!r}")
        if not 0 < self.fps <= 1000:
            raise FieldError("fps", f"expected 0 < fps <= 1000, got {self.fps}")
        if self.width < 0 or self.height < 0 or (self.kind == "synthetic" and (self.width < 64 or self.height < 64)):
            raise FieldError("", f"expected width/height >= 64, got {self.width}x{self.height}")
        if self.people < 0 or self.confusers < 0:
            raise FieldError("", "people/confusers must be >= 0")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise FieldError("reconnect_initial_s", "expected 0 < initial <= reconnect_max_s")


@dataclass(frozen=True)
class StreamConfig:
    """One camera or feed, published under its own id."""

    id: str
    """Stream id: used in topics (``frames/<id>``) and file names; letters, digits, ``-``, ``_``."""
    source: SourceConfig = field(default_factory=SourceConfig)
    detect_fps: Optional[float] = None
    """This stream's detect rate (frames/s through the network), overriding processor.detect_fps;
    every frame is still published, with the stabilizer's predicted tracks between detections."""
    zones: tuple[ZoneConfig, ...] = ()
    """Named areas events report (anchored at a box's bottom centre; streamcam/events/zones.py)."""
    masks: tuple[MaskConfig, ...] = ()
    """Areas whose detections are dropped before annotation and events."""
    lines: tuple[LineConfig, ...] = ()
    """Counting lines: crossings per direction."""
    plate: Optional[str] = None
    """A picture of this camera without its movers (``streamcam plate FOOTAGE --out plate.png``): with
    processor.silhouettes, the stream's plate from its first frame instead of after 90 s of samples;
    the live samples take over once they are in. The camera's resolution, grey or colour."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.id):
            raise FieldError("id", f"expected letters, digits, '-' or '_' (1-64), got {self.id!r}")
        if self.detect_fps is not None and not 0.0 < self.detect_fps <= 1000.0:
            raise FieldError("detect_fps", f"expected 0 < frames/s <= 1000, got {self.detect_fps}")


@dataclass(frozen=True)
class FacesConfig:
    """Face mode (processor.mode: faces): how faces are found in each frame (streamcam/faces/finder.py)."""

    threshold: float = 0.5
    """CenterFace heatmap score a face needs (lower finds more turned and small faces, and more false ones)."""
    min_face_frac: float = 0.1
    """Smallest face reported, as a fraction of the frame's shorter side."""
    max_side: int = 320
    """The face finder sees a copy whose long side is at most this many pixels: a bounded cost per camera
    (320: ~40 ms CPU, 99 of 100 lfw faces; 640: ~4x the cost, 100 of 100; docs/benchmarks.md, "Face mode")."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name}: expected {why}, got {getattr(self, name)!r}")

        if not 0.0 < self.threshold < 1.0:
            raise bad("threshold", "a score in (0, 1)")
        if not 0.0 <= self.min_face_frac <= 1.0:
            raise bad("min_face_frac", "a fraction in [0, 1]")
        if self.max_side < 32:
            raise bad("max_side", "at least CenterFace's 32 px stride")


@dataclass(frozen=True)
class TensorRTConfig:
    """The TensorRT plan the processor loads (processor.backend: tensorrt); the same options as
    `streamcam build-engine`, so the plan that command built is the one found and loaded."""

    precision: Literal["fp16", "fp32", "int8"] = "fp16"
    max_batch: int = 8
    """Largest batch the plan accepts (the processor batches the newest frame of every stream)."""
    opt_batch: Optional[int] = None
    """Batch size TensorRT tunes kernels for; None = max_batch. 1 for a single camera."""
    calibration: Optional[str] = None
    """int8 only (required there): the folder of frames the plan was calibrated on."""
    cache_dir: str = "engines/cache"
    """Where build-engine caches plans, keyed by model, GPU, TensorRT version, precision, shapes."""
    plan: Optional[str] = None
    """A plan file to load as it is (its sidecar must name this model); None: the cached plan for the options."""
    build_on_start: bool = False
    """No plan for these options yet: build it at start-up (minutes, before any frame is processed)
    instead of refusing with the build-engine command to run."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= 1024:
            raise FieldError("max_batch", f"expected 1-1024, got {self.max_batch}")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise FieldError("opt_batch", f"expected 1-{self.max_batch} (max_batch), got {self.opt_batch}")
        if (self.precision == "int8") != (self.calibration is not None):
            raise FieldError("calibration", "the folder of calibration frames is required for precision int8 and "
                             f"only there (precision {self.precision}, calibration {self.calibration!r})")


@dataclass(frozen=True)
class ProcessorConfig:
    """The network, the CAM and the box rule."""

    mode: Literal["cam", "faces"] = "cam"
    """cam: CAM boxes over the whole frame; faces: find faces, then per-face class + CAM (e.g. emotions)."""
    model: str = "engines/person-ir.onnx"
    """ONNX model exported by streamcam (metadata inside); relative paths are from the config's repo root."""
    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    """onnxruntime (CPU, everywhere) or tensorrt (NVIDIA GPU; see `streamcam info`)."""
    fallback: bool = False
    """If the chosen backend cannot run here, use onnxruntime instead of failing."""
    frame_path: Literal["cpu", "gpu", "reference"] = "cpu"
    """Where preprocessing, CAM and the heatmap blend run. cpu: on the CPU, the publisher blends;
    gpu (backend tensorrt): the frame is uploaded once and blended by the fused CUDA kernel, the
    processor sends the blended frame; reference: the gpu path's numpy twin (onnxruntime), for tests."""
    threads: int = 1
    """Engine intra-op threads; the other stages need the remaining cores."""
    classes: tuple[str, ...] = ()
    """Classes whose CAM gives boxes; empty = the model's positive classes."""
    cam_threshold: Optional[float] = None
    """Box threshold as a fraction of the CAM maximum; None = the model's calibrated value."""
    min_score: float = 0.5
    """Frame-level class probability below which no boxes are reported."""
    detect_every: int = 1
    """Run the network on every n-th frame of each stream; the frames between get the stabilizer's
    predicted tracks and the last map (a detect rate below the frame rate: a big input on a small CPU)."""
    detect_fps: Optional[float] = None
    """Run the network on at most this many frames per second of each stream, by capture time (as
    Frigate's detect fps); None: every detect_every-th frame. streams[].detect_fps overrides it."""
    head_tops: bool = True
    """A peak model calibrated with a head-top line (``peak_boxes.top_line``) sizes each box from its
    person's head top, the top of the foreground above the peak against each stream's background (the
    median of recent frames, kept by the processor: about 7 ms of CPU per sample, 10 samples/s, and
    31 grey frames of memory per stream, 14 MB at 768x576). false: the row's size line only.
    Measured in docs/benchmarks.md, "Stop 31"."""
    silhouettes: bool = False
    """Boxes against each stream's plate of many moments (a median of 31 grey frames 10 s apart, ready
    after 90 s; for stills, the other frames of their camera): a box less than a quarter foreground is
    on a fixture (a parked bicycle, a bollard) and is dropped, the rest take the bounds of their
    person's blob. Its price: a person standing still for more than about 2.5 min is dropped too until
    they move. About 4 ms a detected frame at 640x512, 25 ms at 1280x1024. Measured in docs/benchmarks.md,
    "Stop 32"."""
    faces: FacesConfig = field(default_factory=FacesConfig)
    """Face finding in face mode (mode: faces); ignored in cam mode."""
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    """The TensorRT plan's options (backend tensorrt); ignored by onnxruntime."""
    workers: int = 1
    """Detection workers the supervisor starts on this host. 1 (scale_out off): one processor with the
    stabilizer inside, no extra hop. Scaled out, more workers on any host (`streamcam process`) share
    the frames through ZeroMQ's load balancing; 0 = only remote ones."""
    scale_out: Optional[bool] = None
    """Stateless workers behind a dispatcher (frames -> work) and the stabilizer as its own stage
    (detected -> results); None: on when workers is not 1. On with workers: 1 lets other hosts add workers."""

    def __post_init__(self) -> None:
        if self.cam_threshold is not None and not 0.0 < self.cam_threshold < 1.0:
            raise FieldError("cam_threshold", f"expected a fraction in (0, 1), got {self.cam_threshold}")
        if not 1 <= self.detect_every <= 100:
            raise FieldError("detect_every", f"expected 1..100 frames, got {self.detect_every}")
        blends = (f"(the {self.frame_path} path blends the heatmap into the frame it detected on, not into the "
                  "frames between)")
        if self.detect_every > 1 and self.frame_path != "cpu":
            raise FieldError("detect_every", f"{self.detect_every} needs frame_path cpu {blends}")
        if self.detect_fps is not None:
            if not 0.0 < self.detect_fps <= 1000.0:
                raise FieldError("detect_fps", f"expected 0 < frames/s <= 1000, got {self.detect_fps}")
            if self.detect_every > 1:
                raise FieldError("detect_fps", f"set either a detect rate or processor.detect_every "
                                 f"({self.detect_every}), not both")
            if self.frame_path != "cpu":
                raise FieldError("detect_fps", f"a detect rate needs frame_path cpu {blends}")
        if not 0.0 <= self.min_score <= 1.0:
            raise FieldError("min_score", f"expected a probability in [0, 1], got {self.min_score}")
        if not 1 <= self.threads <= 64:
            raise FieldError("threads", f"expected 1-64, got {self.threads}")
        if self.frame_path != "cpu":
            need = "tensorrt" if self.frame_path == "gpu" else "onnxruntime"
            if self.backend != need:
                raise FieldError("frame_path", f"{self.frame_path} runs on backend {need}, got processor.backend "
                                 f"{self.backend!r}")
            if self.mode != "cam":
                raise FieldError("frame_path", f"{self.frame_path} blends whole-frame CAMs; mode {self.mode!r} "
                                 "needs frame_path cpu")

    def engine_options(self, resolve: Any = None) -> dict[str, Any]:
        """Keyword options for the chosen backend's engine (paths resolved with ``resolve``)."""
        if self.backend != "tensorrt":
            return {}
        t = self.tensorrt
        r = resolve or (lambda p: p)
        return {"precision": t.precision, "max_batch": t.max_batch, "opt_batch": t.opt_batch,
                "calibration": r(t.calibration) if t.calibration else None, "cache_dir": r(t.cache_dir),
                "plan": r(t.plan) if t.plan else None, "build": t.build_on_start}


@dataclass(frozen=True)
class PublisherConfig:
    """How annotated frames look and how they are encoded."""

    jpeg_quality: int = 80
    heatmap: bool = True
    """Blend the CAM heatmap into the published frame."""
    alpha: float = 0.4
    """Heatmap opacity in the blend."""
    plain_frames: Optional[bool] = None
    """Also send each frame annotated without the heatmap (JPEG part ``image_plain``) for the web
    page's heatmap toggle (one more annotate + JPEG per frame). None: offered when serve.enabled and
    made on request, while a subscriber (the bridge, for a ``?heatmap=0`` viewer) subscribes to
    ``want/plain/<id>/``; true: in every frame; false: never."""
    catch_up_ms: float = 150.0
    """When several results of a stream are waiting, the older ones are published too while they are
    at most this old (capture -> now; the newest always is): a burst from the processor (a detection
    back with the frames predicted meanwhile) goes out whole, a stale backlog (a stall, the first
    engine call) is skipped to the newest. 0: the newest only (that lost ~7 % of a 25 fps camera's
    answered frames). Ages are read on this host's clock against the capture host's."""

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise FieldError("jpeg_quality", f"expected 1-100, got {self.jpeg_quality}")
        if not 0.0 <= self.catch_up_ms <= 10_000.0:
            raise FieldError("catch_up_ms", f"expected 0-10000 ms, got {self.catch_up_ms}")
        if not 0.0 <= self.alpha <= 1.0:
            raise FieldError("alpha", f"expected 0-1, got {self.alpha}")

    def wants_plain(self, serving: bool) -> bool:
        return self.heatmap and (serving if self.plain_frames is None else self.plain_frames)


@dataclass(frozen=True)
class EndpointsConfig:
    """ZeroMQ endpoints between stages; ``{run_dir}`` is replaced by the run directory."""

    frames: str = "ipc://{run_dir}/frames.sock"
    """capture -> processor (processor binds PULL)."""
    results: str = "ipc://{run_dir}/results.sock"
    """processor -> publisher (publisher binds PULL)."""
    publish: str = "tcp://127.0.0.1:5560"
    """publisher PUB socket for subscribers: ``frames/<id>`` and ``detections/<id>`` topics. Port ``*``
    (``tcp://127.0.0.1:*``): one the OS picks, in ``<run_dir>/bound/publisher.json`` once bound (no
    stage connects to it; the bridge and the recorder do, so they need a port set here)."""
    work: str = "ipc://{run_dir}/work.sock"
    """Scaled out: dispatcher -> workers (the dispatcher binds PUSH; each worker connects PULL)."""
    detected: str = "ipc://{run_dir}/detected.sock"
    """Scaled out: workers -> stabilizer (the stabilizer binds PULL; it pushes to ``results``)."""
    control: str = "ipc://{run_dir}/control.sock"
    """The supervisor's REP socket: `streamcam streams add|remove|list` (streamcam/control.py)."""


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP bridge: MJPEG streams and a minimal page."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Loopback by default: exposing video to a network is an explicit decision."""
    port: int = 8080
    max_clients: int = 16
    """Open HTTP connections at most (MJPEG streams hold theirs); more are answered 503 at once."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header values served (DNS rebinding): empty = localhost, 127.0.0.1, [::1] and serve.host."""
    token_file: Optional[str] = None
    """File holding the access token clients must present (``?token=`` once, then a cookie); required
    when security.curve is on (the bus is secured) or serve.host is beyond loopback."""
    frames: str = "on_demand"
    """``on_demand``: the bridge takes a stream's frames only while a viewer watches it, so the
    publisher encodes and the processor sends none for unwatched streams (many cameras); ``always``."""

    def __post_init__(self) -> None:
        if self.frames not in ("on_demand", "always"):
            raise FieldError("frames", f"expected on_demand or always, got {self.frames!r}")
        if not 0 <= self.port < 65536:
            raise FieldError("port", f"expected 0-65535, got {self.port}")
        if not 1 <= self.max_clients <= 1024:
            raise FieldError("max_clients", f"expected 1-1024, got {self.max_clients}")


@dataclass(frozen=True)
class RecordConfig:
    """Recording the annotated stream to MP4 during a run."""

    enabled: bool = False
    path: str = "{run_dir}/annotated.mp4"
    seconds: float = 10.0
    """Stop recording after this long (0 = whole run)."""


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus endpoints, one per stage process."""

    enabled: bool = False
    host: str = "127.0.0.1"
    base_port: int = 9100
    """publisher: base_port, processor: +1, capture of stream i: +2+i. 0: each stage on a port the
    OS picks, in ``<run_dir>/bound/<stage>.json`` (``metrics``) once it serves."""


@dataclass(frozen=True)
class SecurityConfig:
    """Who may connect: CURVE keys for tcp endpoints, and where binding is allowed."""

    curve: bool = False
    """Authenticate and encrypt every tcp endpoint with ZeroMQ CURVE (keys from `streamcam keys`)."""
    keys_dir: str = "keys"
    """Holds server.key(_secret), <client_name>.key_secret and allowed/*.key (allowed client public keys)."""
    client_name: str = "client"
    """Which key pair in keys_dir this host's connecting sockets use."""
    allow_remote_bind: bool = False
    """tcp endpoints bind to loopback unless this is true: exposing a stage is an explicit decision."""


@dataclass(frozen=True)
class RunConfig:
    """How the supervisor runs the pipeline."""

    run_dir: str = "runs/{name}"
    """Sockets, logs and the run summary go here."""
    duration_s: Optional[float] = None
    """Stop after this long (None = until Ctrl-C / SIGTERM)."""
    restart_backoff_s: float = 0.5
    """First delay before restarting a crashed stage; doubles per crash up to 10 s."""
    max_streams: int = 64
    """Streams each stage keeps state for (tracks, rates); stream ids come off the wire, so past this
    the least recently seen is evicted (counted) instead of memory growing with every new id."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def __post_init__(self) -> None:
        if self.duration_s is not None and self.duration_s <= 0:
            raise FieldError("duration_s", f"expected a positive number of seconds, got {self.duration_s}")


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline: streams, processor, publisher and how to run them."""

    name: str = "default"
    streams: tuple[StreamConfig, ...] = (StreamConfig(id="ir0"),)
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    stabilizer: StabilizerConfig = field(default_factory=StabilizerConfig)
    """Steady, tracked detections: association, Kalman, lifecycle, hysteresis, smoothing (streamcam/stabilizer/config.py)."""
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    run: RunConfig = field(default_factory=RunConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    """new / update / end events from the tracks, snapshots, clips, MQTT and webhooks."""
    base_dir: str = "."
    """Directory relative paths are resolved against (set by the loader, not in YAML)."""

    # --- derived values -------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.resolve(self.run.run_dir.replace("{name}", self.name)))

    def resolve(self, path: str) -> str:
        """A path from the config, relative to the config's base directory."""
        p = Path(path.replace("{run_dir}", str(self.run_dir)) if "{run_dir}" in path else path)
        return str(p if p.is_absolute() else Path(self.base_dir) / p)

    def endpoint(self, name: str) -> str:
        ep = getattr(self.endpoints, name)
        if "{run_dir}" in ep:
            ep = ep.replace("{run_dir}", str(self.run_dir.absolute()))
        return ep

    def stream(self, stream_id: str) -> StreamConfig:
        for s in self.streams:
            if s.id == stream_id:
                return s
        raise ConfigError(f"streams: no stream with id {stream_id!r} (have {[s.id for s in self.streams]})")

    def model_path(self) -> str:
        return self.resolve(self.processor.model)

    @property
    def scaled_out(self) -> bool:
        """Stateless workers behind a dispatcher, and the stabilizer as its own stage (processor.scale_out)."""
        p = self.processor
        return p.workers != 1 if p.scale_out is None else p.scale_out

    def curve(self):
        """The CURVE policy for this process's sockets, or None when security.curve is off."""
        if not self.security.curve:
            return None
        from .security import Curve

        return Curve(self.resolve(self.security.keys_dir), self.security.client_name)


# --- loading and validation --------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields or k == "base_dir"]
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        choices = sorted(k for k in fields if k != "base_dir")
        raise ConfigError(f"{name}: unknown key (expected one of {choices})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise ConfigError(f"{'.'.join(k for k in (prefix, exc.field) if k) or where}: {exc.why}") from None
    except (TypeError, ValueError) as exc:
        # Dataclasses that validate themselves (StabilizerConfig) raise ValueError naming the field.
        raise ConfigError(f"{where}: {exc}") from None


def _validate(cfg: PipelineConfig) -> None:
    """The checks that span fields of several sections; each field's own range is checked beside it."""
    if not cfg.streams:
        raise ConfigError("streams: expected at least one stream")
    seen = set()
    for i, s in enumerate(cfg.streams):
        key = f"streams[{i}]"
        if s.id in seen:
            raise ConfigError(f"{key}.id: duplicate stream id {s.id!r}")
        seen.add(s.id)
        for what in ("zones", "lines"):
            names = [z.name for z in getattr(s, what)]
            for j, name in enumerate(names):
                if name in names[:j]:
                    raise ConfigError(f"{key}.{what}[{j}].name: duplicate name {name!r}")
    p = cfg.processor
    for key, fps in ((f"streams[{i}].detect_fps", s.detect_fps) for i, s in enumerate(cfg.streams)):
        if fps is None:
            continue
        if p.detect_every > 1:
            raise ConfigError(f"{key}: set either a detect rate or processor.detect_every ({p.detect_every}), not both")
        if p.frame_path != "cpu":
            raise ConfigError(f"{key}: a detect rate needs frame_path cpu (the {p.frame_path} path blends the heatmap "
                              "into the frame it detected on, not into the frames between)")
    if not 0 <= p.workers <= 64:
        raise ConfigError(f"processor.workers: expected 0-64 local workers, got {p.workers}")
    if p.scale_out is False and p.workers != 1:
        raise ConfigError(f"processor.workers: {p.workers} workers need processor.scale_out (false: one processor "
                          "with the stabilizer inside)")
    if cfg.scaled_out:
        # A detect rate keeps per-stream state (when each stream was last detected) in the processor;
        # stateless workers cannot share it.
        for key, on in (("processor.detect_every", p.detect_every > 1), ("processor.detect_fps", p.detect_fps is not None),
                        ("streams[].detect_fps", any(s.detect_fps is not None for s in cfg.streams))):
            if on:
                raise ConfigError(f"{key}: a detect rate needs one processor (processor.workers: 1, scale_out off); "
                                  "scaled-out workers are stateless")
    if p.frame_path != "cpu" and not cfg.publisher.heatmap:
        raise ConfigError(f"processor.frame_path: {p.frame_path} blends the heatmap, but publisher.heatmap is false; "
                          "use frame_path cpu")
    for name in ENDPOINT_NAMES:
        ep = cfg.endpoint(name)
        if ep.startswith("tcp://") and ep.endswith(":*"):
            # Any port for the one endpoint that only subscribers connect to: they read the bound one
            # from the run dir. Every other endpoint is connected to by a stage, which needs its port.
            if name != "publish":
                raise ConfigError(f"endpoints.{name}: {ep}: port * (any) only for endpoints.publish; the stages "
                                  f"that connect to {name} need its port")
            for key, on in (("serve.enabled", cfg.serve.enabled), ("record.enabled", cfg.record.enabled)):
                if on:
                    raise ConfigError(f"endpoints.publish: {ep}: port * (any) needs {key}: false (it connects to "
                                      "the publisher with the port set here)")
            ep = ep[:-1] + "1"  # the rest of the endpoint checked as any other
        ep = check_endpoint(ep, f"endpoints.{name}")
        host = ep[len("tcp://"):].rsplit(":", 1)[0] if ep.startswith("tcp://") else None
        if host in WILDCARD_HOSTS:
            # The same endpoint string is what the other stages connect to: a wildcard binds, then
            # every connecting stage fails. Name the address they should reach.
            raise ConfigError(f"endpoints.{name}: {ep} is a wildcard; the stages that connect to it need a real "
                              "address (tcp://<this host's address>:PORT, with security.allow_remote_bind: true)")
        if host is not None and host.strip("[]") not in LOOPBACK_HOSTS and not cfg.security.allow_remote_bind:
            raise ConfigError(
                f"endpoints.{name}: {ep} binds beyond loopback; set security.allow_remote_bind: true "
                f"(and preferably security.curve: true) to expose it"
            )
    for key, host in (("serve.host", cfg.serve.host), ("metrics.host", cfg.metrics.host)):
        if host.strip("[]") not in LOOPBACK_HOSTS and not cfg.security.allow_remote_bind:
            raise ConfigError(f"{key}: {host} is beyond loopback; set security.allow_remote_bind: true to expose it")
    if cfg.serve.enabled and cfg.serve.token_file is None:
        if cfg.security.curve:
            raise ConfigError("serve.token_file: required when security.curve is on (the bridge would re-serve the "
                              "secured video to anyone); `streamcam keys` writes one, or set serve.enabled: false")
        if cfg.serve.host.strip("[]") not in LOOPBACK_HOSTS:
            raise ConfigError(f"serve.token_file: required when serve.host ({cfg.serve.host}) is beyond loopback")
    for i, st in enumerate(cfg.streams):
        if st.plate is None:
            continue
        if not cfg.processor.silhouettes:
            raise ConfigError(f"streams[{i}].plate: used only by processor.silhouettes, which is off; set "
                              "processor.silhouettes: true or drop the plate")
        if not Path(cfg.resolve(st.plate)).is_file():
            raise ConfigError(f"streams[{i}].plate: {cfg.resolve(st.plate)} not found (`streamcam plate FOOTAGE "
                              "--out plate.png` makes one)")
    if cfg.serve.enabled and cfg.serve.token_file is not None and not Path(cfg.resolve(cfg.serve.token_file)).is_file():
        raise ConfigError(f"serve.token_file: {cfg.resolve(cfg.serve.token_file)} not found")
    mqtt = cfg.events.mqtt
    if cfg.events.enabled and mqtt.host is not None and mqtt.ca_certs is not None:
        _check_ca_file(cfg.resolve(mqtt.ca_certs), "events.mqtt.ca_certs")
    if cfg.metrics.base_port != 0 and not 1024 <= cfg.metrics.base_port <= 65535 - 2 - len(cfg.streams):
        raise ConfigError(f"metrics.base_port: expected 1024-{65533 - len(cfg.streams)} (or 0: ports the OS picks), "
                          f"got {cfg.metrics.base_port}")
    if not len(cfg.streams) <= cfg.run.max_streams <= 100_000:
        raise ConfigError(f"run.max_streams: expected {len(cfg.streams)} (the configured streams) to 100000, "
                          f"got {cfg.run.max_streams}")


class ConfigDeprecationWarning(FutureWarning):
    """A key that still loads under its old name; the message names the new one (shown by default)."""


def _renamed_keys(data: Any) -> Any:
    """``data`` with old keys moved to their new place, one warning per renamed section naming the new keys.

    * ``stabilizer.tracker.<key>`` is ``stabilizer.<key>``: "stabilizer" is the one name of the stage,
      its section and its settings (``StabilizerConfig``).
    """
    stab = data.get("stabilizer") if isinstance(data, dict) else None
    if not isinstance(stab, dict) or "tracker" not in stab:
        return data
    old = stab["tracker"] if stab["tracker"] is not None else {}
    if not isinstance(old, dict):
        raise ConfigError(f"stabilizer.tracker: expected a mapping, got {old!r}")
    for key in old:
        if key in stab:
            raise ConfigError(f"stabilizer.tracker.{key}: also set as stabilizer.{key}; keep only stabilizer.{key}")
    new = ", ".join(f"stabilizer.{k}" for k in old) or "stabilizer.<key>"
    warnings.warn(f"stabilizer.tracker is deprecated: write its keys directly under stabilizer ({new})",
                  ConfigDeprecationWarning, stacklevel=3)
    return {**data, "stabilizer": {**{k: v for k, v in stab.items() if k != "tracker"}, **old}}


def _check_ca_file(path: str, key: str) -> None:
    """A CA bundle that TLS can load, or a ConfigError naming ``key`` (before any connection is tried)."""
    import ssl

    if not Path(path).is_file():
        raise ConfigError(f"{key}: {path} not found (a PEM file of the CA certificates that signed the broker's)")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as err:
        raise ConfigError(f"{key}: {path} is not a PEM file of CA certificates ({err})") from None


def config_from_dict(data: Any, base_dir: str = ".") -> PipelineConfig:
    """Build and validate a config from parsed YAML (a dict); old key names load with a warning."""
    cfg = _build(PipelineConfig, _renamed_keys(data), "")
    cfg = dataclasses.replace(cfg, base_dir=str(base_dir))
    _validate(cfg)
    return cfg


def _repo_root_for(path: Path) -> Path:
    # Configs live in <root>/configs/, and name models as engines/...: resolve from <root>.
    parent = path.resolve().parent
    return parent.parent if parent.name == "configs" else parent


def load_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None, base_dir: str | None = None
) -> PipelineConfig:
    """Load a YAML config file; ``overrides`` (dotted keys) replace values before validation.

    Relative paths resolve against ``base_dir``, by default the repository root when the
    file is in a ``configs/`` folder, else the file's folder.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for k in parents:
            if isinstance(node, dict) and node.get(k) is None:
                node[k] = {}  # a key left empty in the YAML (`stabilizer:` with only comments) is an empty mapping
            node = node[k] if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: cannot set a key below a non-mapping value")
        node[last] = value
    return config_from_dict(data, base_dir=base_dir or str(_repo_root_for(p)))


def to_dict(cfg: PipelineConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d.pop("base_dir", None)
    return d


def repo_config(*names: str) -> Path:
    """The first of ``names`` (default.yaml when none) in configs/ next to the package (source
    checkout) or shipped inside it."""
    here = Path(__file__).resolve().parent
    for name in names + ("default.yaml",):
        for cand in (here.parent / "configs" / name, here / "configs" / name):
            if cand.is_file():
                return cand
    raise StreamcamError("configs/default.yaml not found: pass a config file")
