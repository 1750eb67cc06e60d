"""A whole pipeline run by the supervisor (``streamcam run``) in a process of its own: its config, its
published endpoint (read back from the run dir: the publisher binds a port the OS picks), its stages."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import zmq

from _wait import wait_for
from streamcam import protocol
from streamcam.stats import read_bound
from streamcam.transport import make_socket


def pipeline_yaml(tmp: Path, model, metrics: bool = False, **extra) -> Path:
    """``tmp/c.yaml``: one synthetic stream, the model, serve off, the publisher on a port the OS picks
    (``tcp://127.0.0.1:*``, see :func:`published`), metrics (``metrics``) on ports the OS picks too."""
    text = f"""
name: t
streams:
  - id: cam0
    source: {{kind: synthetic, width: 320, height: 240, fps: 20, people: 2, confusers: 1}}
processor: {{model: {model}, min_score: 0.0}}
serve: {{enabled: false}}
endpoints:
  publish: "tcp://127.0.0.1:*"
run: {{run_dir: {tmp}/run, restart_backoff_s: 0.2}}
"""
    if metrics:
        text += "metrics: {enabled: true, base_port: 0}\n"
    p = tmp / "c.yaml"
    p.write_text(text + "".join(f"{k}: {v}\n" for k, v in extra.items()))
    return p


def start_run(cfg_path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamcam", "run", str(cfg_path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def bound(run_dir, stage: str, key: str, timeout: float = 20.0) -> str:
    """The address stage ``stage`` bound for ``key`` (``publish``, ``metrics``), once it has."""
    return wait_for(f"{stage} to bind its {key} ({Path(run_dir) / 'bound'})",
                    lambda: read_bound(run_dir, stage).get(key), timeout=timeout)


def published(run_dir, timeout: float = 20.0) -> str:
    """The publisher's endpoint (``tcp://127.0.0.1:PORT``) once it has bound it."""
    return bound(run_dir, "publisher", "publish", timeout)


def receive(endpoint: str, topic: str, n: int, timeout: float = 20.0) -> list:
    ctx = zmq.Context()
    sub = make_socket(ctx, "SUB", endpoint, bind=False, subscribe=topic)
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            if sub.poll(200):
                got.append(protocol.decode(sub.recv_multipart()))
    finally:
        sub.close(0)
        ctx.term()
    return got


def stage_pids(run_dir, command: str | None = None) -> list[int]:
    """Live processes started with this run's config (``streamcam <stage> RUN_DIR/config.json``);
    ``command`` (``process``, ``publish``, ...): only that stage's.

    Read from /proc, matching one argv element exactly: no pgrep, whose pattern also matches
    other processes' command lines; an orphan of a stopped supervisor is still found."""
    want = f"{run_dir}/config.json".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if want in argv and any(a.endswith(b"streamcam") for a in argv) and (
                command is None or command.encode() in argv):
            pids.append(int(proc.name))
    return sorted(pids)
