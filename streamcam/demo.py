"""`streamcam demo`: the embedded default pipeline for a while, then a summary against the targets."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from typing import Any

from .config import load_config

TARGET_FPS = 25.0
TARGET_P99_MS = 100.0


def _probe_page(url: str, stop: threading.Event, found: dict) -> None:
    """Check the web page really serves while the demo runs (a user would open it)."""
    deadline = time.monotonic() + 15.0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/streams", timeout=1.0) as r:
                found["streams"] = json.loads(r.read()).get("streams", [])
                if found["streams"]:
                    return
        except OSError:
            pass
        stop.wait(0.5)


def run_demo(seconds: float = 20.0, serve: bool = True, record_s: float = 5.0, port: int = 8080,
             overrides: dict[str, Any] | None = None) -> int:
    """``overrides`` (dotted keys, ``--set``) go over the demo's own: a run dir or publish port of its own."""
    from .config import repo_config
    from .lifecycle import install_stop_handlers, setup_logging
    from .supervisor import Supervisor, format_summary, print_plan

    overrides = {
        "serve.enabled": serve, "serve.port": port,
        "record.enabled": record_s > 0, "record.seconds": record_s,
        "run.log_level": "WARNING",
        **(overrides or {}),
    }
    cfg = load_config(repo_config(), overrides)
    setup_logging("WARNING", "demo")
    logging.getLogger("streamcam.supervisor").setLevel(logging.INFO)
    print_plan(cfg)
    sup = Supervisor(cfg)
    install_stop_handlers(sup.stop_event)
    probe: dict = {}
    t = None
    if serve:
        t = threading.Thread(target=_probe_page, args=(f"http://{cfg.serve.host}:{port}/", sup.stop_event, probe), daemon=True)
        t.start()
    print(f"running for {seconds:g} s ...", flush=True)
    summary = sup.run(seconds)
    print(format_summary(summary))
    ok = True
    for sid, st in summary.get("streams", {}).items():
        fps, p99 = st.get("fps") or 0.0, st.get("latency_ms_p99") or float("inf")
        print(f"  targets {sid}: fps {fps:.1f} {'>=' if fps >= TARGET_FPS else '<'} {TARGET_FPS:g} "
              f"{'ok' if fps >= TARGET_FPS else 'MISSED'}; p99 {p99:.1f} ms {'<=' if p99 <= TARGET_P99_MS else '>'} "
              f"{TARGET_P99_MS:g} {'ok' if p99 <= TARGET_P99_MS else 'MISSED'}")
        ok = ok and fps >= TARGET_FPS and p99 <= TARGET_P99_MS
    if not summary.get("streams"):
        ok = False
    if serve:
        print(f"  web page: {'served ' + str(len(probe.get('streams', []))) + ' stream(s)' if probe.get('streams') else 'NOT reachable'}"
              f" at http://{cfg.serve.host}:{port}/")
    if record_s > 0:
        print(f"  annotated MP4: {cfg.resolve(cfg.record.path)}")
    print(f"  summary: {cfg.run_dir / 'summary.json'}")
    # A short localization check of the same model, then the plots of this run.
    from .evaluation.pipeline import run_eval
    from .report import make_report

    ev = run_eval(cfg, frames=40, out=str(cfg.run_dir / "eval.json"), progress=False)
    print(f"  localization (40 held-out frames, IoU >= 0.5): {ev['localization_accuracy']} "
          f"(MaxBoxAcc {ev.get('max_box_acc')} at threshold {ev.get('best_threshold')})")
    from .errors import BackendUnavailable

    try:
        for path in make_report(cfg.run_dir):
            print(f"  plot: {path}")
    except BackendUnavailable as exc:  # the plots are an extra; the demo itself has run
        print(f"  plots skipped: {exc}")
    return 0 if ok else 1
