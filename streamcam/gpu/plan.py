"""TensorRT plans: build one from a streamcam ONNX model, cache it, and never load a stale one.

A plan is only valid for the exact ONNX file, TensorRT version, GPU model and compute
capability, precision and input shapes it was built for. :func:`plan_key` hashes all of
them (a pure function); the plan is stored as ``<cache_dir>/<model>-<precision>-<key>.plan``
with a ``.json`` sidecar holding the key's fields, and :func:`cached_plan` returns it only
when the sidecar matches field for field — a plan from another model, GPU or TensorRT
version is rebuilt, never loaded.

``streamcam build-engine MODEL.onnx`` is :func:`build_engine_main`. tensorrt is imported
when a plan is built, never at module import.

Why one module of ~500 lines: the key, the cache lookup, calibration and the build are one
contract (a plan is loaded only if it was built from exactly these inputs) and change together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendUnavailable, ModelError, StreamcamError

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_CACHE_DIR = "engines/cache"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".npy")


# --- the cache key (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class PlanFields:
    """Everything a plan depends on. Two plans are interchangeable only if all fields are equal."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    input_name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    calibration: str = ""
    """sha256 of the INT8 calibration set (file names and contents); empty unless int8."""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("compute_capability", "min_shape", "opt_shape", "max_shape"):
            d[k] = list(d[k])
        return d


def plan_key(fields: PlanFields) -> str:
    """A 24-hex-digit sha256 of every field (order-stable JSON): the plan's cache identity."""
    if fields.precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {fields.precision!r}")
    text = json.dumps(fields.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def plan_path(cache_dir: str | Path, model_path: str | Path, fields: PlanFields) -> Path:
    return Path(cache_dir) / f"{Path(model_path).stem}-{fields.precision}-{plan_key(fields)}.plan"


def cached_plan(cache_dir: str | Path, model_path: str | Path, fields: PlanFields) -> Path | None:
    """The cached plan for ``fields`` if it exists and its sidecar matches every field, else ``None``."""
    path = plan_path(cache_dir, model_path, fields)
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        return None
    try:
        stored = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("plan sidecar %s unreadable (%s); rebuilding", side, exc)
        return None
    if stored != fields.to_json():
        log.warning("plan %s was built for different inputs; rebuilding", path)
        return None
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def calibration_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"calibration: expected a folder of images or .npy frames, got {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ModelError(f"calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def calibration_id(files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode("utf-8") + b"\0" + sha256_file(p).encode("ascii"))
    return h.hexdigest()


def device_identity(device: int = 0) -> tuple[str, tuple[int, int]]:
    """``(name, (major, minor))`` of GPU ``device`` through the driver API (no pycuda needed)."""
    import ctypes

    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise BackendUnavailable("no NVIDIA driver (libcuda.so.1 not found)") from exc
    dev = ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(dev), device) != 0:
        raise BackendUnavailable(f"cannot open GPU {device} (cuInit/cuDeviceGet failed)")
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, dev)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    return name.value.decode("utf-8", "replace"), (major.value, minor.value)


# --- building (needs tensorrt) -------------------------------------------------------------


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(
            f"tensorrt is not installed ({exc}); pip install 'streamcam[gpu]' "
            "(TensorRT 10+ from NVIDIA's index, see docs/gpu.md)") from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT 10+ is required, found {trt.__version__}")
    return trt


def parser_errors(parser: Any) -> list[str]:
    """Every ONNX parser error, one line each: node, operator, code and description."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = []
        for attr, label in (("node_name", "node"), ("node_operator", "op"), ("node", "node #")):
            fn = getattr(err, attr, None)
            try:
                value = fn() if fn else None
            except Exception:  # older bindings lack some accessors
                value = None
            if value not in (None, "", -1):
                where.append(f"{label} {value}")
        lines.append(f"  [{i + 1}] {', '.join(where) or 'graph'}: {err.code()}: {err.desc()}")
    return lines


class _Spinner:
    """A progress line on stderr while TensorRT builds (when no IProgressMonitor exists)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plan-spinner", daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.25):
            sys.stderr.write(f"\r{self.label} {frames[i % 4]} {time.monotonic() - t0:5.0f} s")
            sys.stderr.flush()
            i += 1

    def __enter__(self) -> "_Spinner":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        sys.stderr.write("\n")


def _progress_monitor(trt):
    """An IProgressMonitor printing phases and steps to stderr, or None if this TensorRT lacks it."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class PhaseMonitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = 1 if parent_phase else 0
            self._steps[phase_name] = num_steps
            sys.stderr.write(f"{'  ' * depth}{phase_name} ({num_steps} steps)\n")

        def step_complete(self, phase_name, step):
            total = self._steps.get(phase_name, 0)
            sys.stderr.write(f"\r  {phase_name}: {step + 1}/{total}")
            sys.stderr.flush()
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            sys.stderr.write(f"\r  {phase_name}: done\n")

    return PhaseMonitor()


def _load_frame(path: Path):
    import cv2
    import numpy as np

    if path.suffix.lower() == ".npy":
        image = np.load(path)
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ModelError(f"calibration: {path} is not a readable 8-bit image")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    return image


def _entropy_calibrator(trt, files: Sequence[Path], meta, batch_size: int, cache_file: Path):
    """An INT8 entropy calibrator feeding preprocessed frames from ``files`` (pycuda device buffer)."""
    import numpy as np
    import pycuda.driver as cuda

    from ..processor.preprocess import preprocess

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            shape = (batch_size, meta.input_channels, meta.input_height, meta.input_width)
            self.host = cuda.pagelocked_empty(shape, np.float32)
            self.device = cuda.mem_alloc(self.host.nbytes)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            if self.index + batch_size > len(files):
                return None  # the remainder smaller than a batch is not used
            for i in range(batch_size):
                image = _load_frame(files[self.index + i])
                self.host[i] = preprocess(image, "GRAY8" if image.ndim == 2 else "BGR8", meta)[0][0]
            self.index += batch_size
            sys.stderr.write(f"\r  calibration: {self.index}/{len(files)} frames")
            cuda.memcpy_htod(self.device, self.host)
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.write_bytes(bytes(cache))

        def free(self) -> None:
            self.device.free()

    return EntropyCalibrator()


def _read_timing_cache(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def plan_fields(onnx_path: str | Path, meta: Any, precision: str, max_batch: int, opt_batch: int | None,
                calibration: Sequence[Path], tensorrt_version: str, gpu_name: str,
                compute_capability: tuple[int, int]) -> PlanFields:
    """What a plan is built for (and looked up by): the one function both `streamcam build-engine`
    and the processor use, so the same options give the same plan key."""
    chw = (meta.input_channels, meta.input_height, meta.input_width)
    opt = max_batch if opt_batch is None else opt_batch
    return PlanFields(
        onnx_sha256=sha256_file(onnx_path), tensorrt_version=tensorrt_version, gpu_name=gpu_name,
        compute_capability=tuple(compute_capability), precision=precision, input_name=meta.input_name,
        min_shape=(1,) + chw, opt_shape=(opt,) + chw, max_shape=(max_batch,) + chw,
        calibration=calibration_id(calibration) if calibration else "")


def calibration_batch(opt_batch: int, n_frames: int) -> int:
    """The INT8 calibrator's batch: the tuned batch, or all frames when there are fewer. The
    calibration profile is built with exactly this batch (min = opt = max), so the two agree."""
    if n_frames < 1:
        raise ModelError("calibration: no frames")
    return min(opt_batch, n_frames)


def resolve_plan(onnx_path: str | Path, precision: str = "fp16", max_batch: int = 8, opt_batch: int | None = None,
                 calibration: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                 plan: str | Path | None = None, build: bool = False, device: int = 0) -> Path:
    """The plan the processor loads: ``plan`` as given (checked against the model), else the cached
    plan for these options (what ``streamcam build-engine`` with the same options made); when there
    is none, built now if ``build``, else a :class:`ModelError` naming the command that builds it."""
    onnx_path = Path(onnx_path)
    if plan is not None:
        return check_plan_file(plan, onnx_path)
    if build:
        return build_plan(onnx_path, precision, calibration, max_batch, cache_dir, opt_batch=opt_batch, device=device)
    from ..processor.model_meta import read_metadata

    trt = _import_tensorrt()
    gpu_name, cc = device_identity(device)
    files = calibration_files(calibration) if calibration is not None else []
    fields = plan_fields(onnx_path, read_metadata(str(onnx_path)), precision, max_batch, opt_batch, files,
                         trt.__version__, gpu_name, cc)
    hit = cached_plan(cache_dir, onnx_path, fields)
    if hit is None:
        raise ModelError(f"no TensorRT plan for {onnx_path.name} ({precision}, batch opt {fields.opt_shape[0]} / max "
                         f"{max_batch}) on {gpu_name} in {cache_dir}; build it first (minutes): "
                         + build_command(onnx_path, precision, max_batch, opt_batch, calibration, cache_dir)
                         + "  (or set processor.tensorrt.build_on_start: true)")
    return hit


def build_command(onnx_path: str | Path, precision: str, max_batch: int, opt_batch: int | None,
                  calibration: str | Path | None, cache_dir: str | Path) -> str:
    """The `streamcam build-engine` line that builds the plan these options look for."""
    cmd = f"streamcam build-engine {onnx_path} --precision {precision} --max-batch {max_batch}"
    if opt_batch is not None:
        cmd += f" --opt-batch {opt_batch}"
    if calibration is not None:
        cmd += f" --calibration {calibration}"
    return cmd + f" --cache-dir {cache_dir}"


def check_plan_file(plan: str | Path, onnx_path: str | Path) -> Path:
    """A plan named in the config: it must exist, and its sidecar (when there is one) name this model."""
    plan = Path(plan)
    if not plan.is_file():
        raise ModelError(f"processor.tensorrt.plan: {plan} not found")
    side = plan.with_suffix(".json")
    if side.is_file():
        try:
            stored = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"processor.tensorrt.plan: sidecar {side} unreadable: {exc}") from None
        if stored.get("onnx_sha256") != sha256_file(onnx_path):
            raise ModelError(f"processor.tensorrt.plan: {plan} was built from another model than {onnx_path}")
    return plan


def build_plan(onnx_path: str | Path, precision: str = "fp16", calibration: str | Path | None = None,
               max_batch: int = 8, cache_dir: str | Path = DEFAULT_CACHE_DIR,
               timing_cache: str | Path | None = None, *, opt_batch: int | None = None, force: bool = False,
               workspace_mb: int = 2048, device: int = 0) -> Path:
    """The plan for ``onnx_path`` from the cache, or built now (minutes) and cached. Returns its path.

    ``calibration`` (int8 only, required there): a folder of images or ``.npy`` uint8 frames,
    preprocessed like live frames. ``timing_cache`` defaults to one file per GPU and TensorRT
    version in ``cache_dir``; it makes rebuilds (other precisions, shapes) much faster.
    """
    from ..processor.model_meta import read_metadata

    if precision not in PRECISIONS:
        raise StreamcamError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if not 1 <= max_batch <= 1024:
        raise StreamcamError(f"max_batch: expected 1..1024, got {max_batch}")
    opt_batch = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt_batch <= max_batch:
        raise StreamcamError(f"opt_batch: expected 1..{max_batch}, got {opt_batch}")
    if (precision == "int8") != (calibration is not None):
        raise StreamcamError("calibration: a folder of frames is required for int8 and only for int8")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"model file not found: {onnx_path}")
    meta = read_metadata(str(onnx_path))
    trt = _import_tensorrt()
    gpu_name, cc = device_identity(device)
    files = calibration_files(calibration) if calibration is not None else []
    fields = plan_fields(onnx_path, meta, precision, max_batch, opt_batch, files, trt.__version__, gpu_name, cc)
    chw = fields.max_shape[1:]
    cache_dir = Path(cache_dir)
    if not force and (hit := cached_plan(cache_dir, onnx_path, fields)) is not None:
        log.info("using cached TensorRT plan %s", hit)
        return hit
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = plan_path(cache_dir, onnx_path, fields)
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu_name).strip("-").lower()
    timing_path = Path(timing_cache) if timing_cache else cache_dir / f"timing-{slug}-sm{cc[0]}{cc[1]}-trt{trt.__version__}.cache"

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise ModelError(f"TensorRT cannot parse {onnx_path} ({parser.num_errors} error(s)):\n"
                         + "\n".join(parser_errors(parser)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    tcache = config.create_timing_cache(_read_timing_cache(timing_path))
    config.set_timing_cache(tcache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    profile.set_shape(meta.input_name, fields.min_shape, fields.opt_shape, fields.max_shape)
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; the plan may be slower than fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    calibrator = None
    ctx = None
    if precision == "int8":
        from .context import PrimaryContext

        ctx = PrimaryContext(device)
        ctx.__enter__()
        config.set_flag(trt.BuilderFlag.INT8)
        # TensorRT calibrates at the calibration profile's shape: one of exactly the calibrator's batch
        # (the tuning profile's opt batch may be larger than the frames there are).
        cal_batch = calibration_batch(opt_batch, len(files))
        calibrator = _entropy_calibrator(trt, files, meta, cal_batch, out.with_suffix(".calib"))
        config.int8_calibrator = calibrator
        cal_profile = builder.create_optimization_profile()
        cal_shape = (cal_batch,) + tuple(chw)
        cal_profile.set_shape(meta.input_name, cal_shape, cal_shape, cal_shape)
        config.set_calibration_profile(cal_profile)
    monitor = _progress_monitor(trt)
    label = f"building {precision} TensorRT plan for {onnx_path.name} on {gpu_name}"
    try:
        if monitor is not None:
            config.progress_monitor = monitor
            sys.stderr.write(label + "\n")
            serialized = builder.build_serialized_network(network, config)
        else:
            with _Spinner(label):
                serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
        if ctx is not None:
            ctx.__exit__(None, None, None)
            ctx.close()
    if serialized is None:
        raise ModelError(f"TensorRT failed to build a plan for {onnx_path} (see the TensorRT messages above)")
    tmp = out.with_suffix(".plan.tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, out)
    out.with_suffix(".json").write_text(json.dumps(fields.to_json(), indent=1), encoding="utf-8")
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    log.info("TensorRT plan written: %s (%.1f MiB)", out, out.stat().st_size / 2**20)
    return out


def build_engine_parser() -> argparse.ArgumentParser:
    """The options of ``streamcam build-engine`` (the processor's ``processor.tensorrt`` mirrors them)."""
    ap = argparse.ArgumentParser(
        prog="streamcam build-engine",
        description="Build a TensorRT plan for a streamcam ONNX model and cache it (needs the gpu extra and a GPU).")
    ap.add_argument("model", help="the ONNX model exported by streamcam")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp16", help="default: fp16")
    ap.add_argument("--calibration", metavar="DIR", help="folder of frames/images for int8 calibration")
    ap.add_argument("--max-batch", type=int, default=8, help="largest batch the plan accepts (default 8)")
    ap.add_argument("--opt-batch", type=int, help="batch size TensorRT tunes for (default: --max-batch)")
    ap.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help=f"plan cache (default {DEFAULT_CACHE_DIR})")
    ap.add_argument("--timing-cache", help="timing cache file (default: one per GPU in --cache-dir)")
    ap.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace (default 2048 MiB)")
    ap.add_argument("--force", action="store_true", help="rebuild even if a valid cached plan exists")
    return ap


def build_engine_main(argv: Sequence[str] | None = None) -> int:
    """``streamcam build-engine MODEL.onnx [options]``: build (or find) the TensorRT plan; prints its path."""
    args = build_engine_parser().parse_args(argv)
    try:
        path = build_plan(args.model, args.precision, args.calibration, args.max_batch, args.cache_dir,
                          args.timing_cache, opt_batch=args.opt_batch, force=args.force,
                          workspace_mb=args.workspace_mb)
    except StreamcamError as exc:
        print(f"streamcam build-engine: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


__all__ = ["PRECISIONS", "PlanFields", "build_command", "build_engine_main", "build_engine_parser", "build_plan", "cached_plan",
           "calibration_batch", "check_plan_file", "device_identity", "parser_errors", "plan_fields", "plan_key",
           "plan_path", "resolve_plan", "sha256_file"]
