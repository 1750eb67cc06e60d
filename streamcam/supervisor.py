"""The supervisor: every stage of a config as its own process, restarted when it dies, stopped on demand.

Stages are started as ``python -m streamcam <stage> ...`` subprocesses, i.e. exactly the
commands a user runs by hand on several hosts. Children ask the kernel to SIGTERM them
if the supervisor dies (no orphans). Ctrl-C and SIGTERM take the same path: children get
SIGTERM, then SIGKILL after a grace period, all within ``stop_timeout_s``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .config import ENDPOINT_NAMES, PipelineConfig, to_dict
from .errors import RunDirBusy
from .lifecycle import terminate
from .stats import read_stats
from .transport import ipc_path

log = logging.getLogger("streamcam.supervisor")


@dataclass
class Child:
    """One supervised stage process."""

    name: str
    argv: list[str]
    restart: bool = True
    """False for stages that finish on their own (the recorder): exit 0 means done."""
    proc: subprocess.Popen | None = None
    restarts: int = 0
    backoff_s: float = 0.5
    next_start: float = 0.0
    started_at: float = 0.0
    done: bool = False
    log_file: Any = field(default=None, repr=False)


def _preexec() -> None:
    from .lifecycle import die_with_parent

    # Own process group: a terminal's Ctrl-C reaches the supervisor, which stops children in order.
    os.setpgrp()
    die_with_parent()


class Supervisor:
    """Runs the stages of ``cfg``; ``run()`` blocks until stopped, ``duration_s`` elapses, or every
    source has ended (``loop: false`` files)."""

    DRAIN_S = 1.5
    """After the last source ends: time for its last frames to be processed and published."""

    def __init__(self, cfg: PipelineConfig, stop_timeout_s: float = 2.0,
                 stop_event: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stop_timeout_s = stop_timeout_s
        self.stop_event = stop_event or threading.Event()
        self.run_dir = cfg.run_dir
        self.children: list[Child] = []
        self.started_ns = 0
        self._lock_fd: int | None = None

    # -- the run directory is one running pipeline's ---------------------------------------
    def lock_run_dir(self) -> None:
        """Hold ``RUN_DIR/run.lock`` (flock) for this run; a second run of the same config would take over
        the first one's ipc sockets and delete its stats, so it is refused, naming the holder's pid.
        The kernel drops the lock when this process dies, however it dies: no stale lock to clean."""
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "run.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirBusy(f"run dir {self.run_dir} is in use by a running pipeline (streamcam run, pid {holder}); "
                             "stop it first, or give this run its own run.run_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock_run_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # -- planning ---------------------------------------------------------------------
    def plan(self) -> list[Child]:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A run dir is reused by the next run of the same config: its stats and bound addresses start empty.
        shutil.rmtree(self.run_dir / "stats", ignore_errors=True)
        shutil.rmtree(self.run_dir / "bound", ignore_errors=True)
        cfg_path = self.run_dir / "config.json"
        cfg_path.write_text(json.dumps(to_dict(cfg), indent=1))
        base = [sys.executable, "-m", "streamcam"]
        common = ["--base-dir", cfg.base_dir, "--log-level", cfg.run.log_level]
        children = [Child("publisher", base + ["publish", str(cfg_path)] + common)]
        if cfg.scaled_out:
            # Stateless workers behind ZeroMQ's load balancing; the per-stream state in its own stage.
            children.append(Child("stabilizer", base + ["stabilize", str(cfg_path)] + common))
            children.append(Child("dispatcher", base + ["dispatch", str(cfg_path)] + common))
            children += [Child(f"worker-w{i}", base + ["process", str(cfg_path), "--name", f"w{i}"] + common)
                         for i in range(cfg.processor.workers)]
        else:
            children.append(Child("processor", base + ["process", str(cfg_path)] + common))
        children += [self._capture(s) for s in cfg.streams]
        keys = (["--keys", cfg.resolve(cfg.security.keys_dir), "--client-name", cfg.security.client_name]
                if cfg.security.curve else [])
        if cfg.serve.enabled:
            serve = ["--max-clients", str(cfg.serve.max_clients), "--frames", cfg.serve.frames]
            serve += [a for h in cfg.serve.allowed_hosts for a in ("--allowed-host", h)]
            if cfg.serve.token_file:
                serve += ["--token-file", cfg.resolve(cfg.serve.token_file)]
            children.append(Child("serve", base + ["serve", cfg.endpoint("publish"), "--host", cfg.serve.host,
                                                    "--port", str(cfg.serve.port)] + serve + keys
                                  + (["--events-dir", cfg.resolve(cfg.events.dir)] if cfg.events.enabled else [])))
        if cfg.record.enabled:
            argv = base + ["record", cfg.endpoint("publish"), "--stream", cfg.streams[0].id,
                           "--out", cfg.resolve(cfg.record.path)] + keys
            if cfg.record.seconds > 0:
                argv += ["--seconds", str(cfg.record.seconds)]
            children.append(Child("record", argv, restart=False))
        for c in children:
            c.backoff_s = cfg.run.restart_backoff_s
        return children

    def _capture(self, s) -> Child:
        # A file, sequence or folder with loop: false ends: exit 0 is the stream done, not a crash.
        ends = not s.source.loop and s.source.kind in ("file", "thermal", "images")
        argv = [sys.executable, "-m", "streamcam", "capture", str(self.run_dir / "config.json"), "--stream", s.id,
                "--base-dir", self.cfg.base_dir, "--log-level", self.cfg.run.log_level]
        child = Child(f"capture-{s.id}", argv, restart=not ends)
        child.backoff_s = self.cfg.run.restart_backoff_s
        return child

    # -- streams at run time (streamcam/control.py) --------------------------------------
    def _write_config(self, cfg: PipelineConfig) -> None:
        path = self.run_dir / "config.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(to_dict(cfg), indent=1))
        os.replace(tmp, path)  # a stage restarting meanwhile reads the old file or the new, never half

    def control(self, raw: bytes) -> dict[str, Any]:
        """One control request (``streamcam streams ...``) → its reply; nothing changes on an error."""
        from .config import config_from_dict
        from .control import parse_request
        from .errors import ConfigError

        try:
            req = parse_request(raw)
            streams = [to_dict(self.cfg)["streams"][i] for i in range(len(self.cfg.streams))]
            if req["op"] == "add":
                data = to_dict(self.cfg)
                data["streams"] = streams + [req["stream"]]
                cfg = config_from_dict(data, base_dir=self.cfg.base_dir)  # every start-time check, naming the key
                added = cfg.streams[-1]
                self._write_config(cfg)
                self.cfg = cfg
                child = self._capture(added)
                self.children.append(child)
                self._start(child)
                log.info("stream %s added", added.id)
            elif req["op"] == "remove":
                ids = [s.id for s in self.cfg.streams]
                if req["id"] not in ids:
                    raise ConfigError(f"remove: no stream {req['id']!r} (have {ids})")
                if len(ids) == 1:
                    raise ConfigError("remove: the last stream cannot be removed (stop the pipeline instead)")
                data = to_dict(self.cfg)
                data["streams"] = [s for s in streams if s["id"] != req["id"]]
                cfg = config_from_dict(data, base_dir=self.cfg.base_dir)
                child = next(c for c in self.children if c.name == f"capture-{req['id']}")
                self._stop_child(child)
                self.children.remove(child)
                self._write_config(cfg)
                self.cfg = cfg
                log.info("stream %s removed", req["id"])
            return {"ok": True, "streams": [to_dict(self.cfg)["streams"][i] for i in range(len(self.cfg.streams))]}
        except ConfigError as exc:
            return {"ok": False, "error": str(exc)}

    def _stop_child(self, child: Child) -> None:
        """SIGTERM one child, SIGKILL it if it has not stopped within the stop timeout."""
        child.done = True
        if child.proc is not None:
            terminate(child.proc, self.stop_timeout_s)
        if child.log_file is not None:
            child.log_file.close()
            child.log_file = None

    def _serve_control(self, sock) -> None:
        """Answer the control requests waiting (at most a few per tick: the stages come first)."""
        import zmq

        for _ in range(8):
            try:
                raw = sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = self.control(raw)
            except Exception as exc:  # noqa: BLE001 (one request never stops the supervisor)
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sock.send(json.dumps(reply).encode())

    # -- process control ----------------------------------------------------------------
    def _start(self, child: Child) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        if child.log_file is None:
            child.log_file = open(logs / f"{child.name}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        child.proc = subprocess.Popen(child.argv, stdout=child.log_file, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=_preexec, env=env)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _check(self, child: Child, now: float) -> None:
        if child.done:
            return
        if child.proc is None:
            if now >= child.next_start:
                self._start(child)
            return
        rc = child.proc.poll()
        if rc is None:
            if now - child.started_at > 30.0:
                child.backoff_s = self.cfg.run.restart_backoff_s  # healthy for a while: forget old crashes
            return
        if rc == 0 and not child.restart:
            log.info("%s finished", child.name)
            child.done = True
            return
        child.restarts += 1
        child.next_start = now + child.backoff_s
        log.warning("%s exited with %s; restart #%d in %.1f s (log: %s)", child.name, rc, child.restarts,
                    child.backoff_s, self.run_dir / "logs" / f"{child.name}.log")
        child.backoff_s = min(child.backoff_s * 2.0, 10.0)
        child.proc = None

    def start(self) -> None:
        self.children = self.plan()
        self.started_ns = time.time_ns()
        for child in self.children:
            self._start(child)

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Start everything, supervise until stopped (signal, ``stop()`` or duration), return the summary."""
        duration_s = duration_s if duration_s is not None else self.cfg.run.duration_s
        if self.stop_event.is_set():  # stopped while starting up: start nothing
            return self.summary()
        self.lock_run_dir()
        control = None
        try:
            import zmq

            from .control import CONTROL_POLICY
            from .transport import make_socket

            self.start()
            control = make_socket(zmq.Context.instance(), "REP", self.cfg.endpoint("control"), bind=True,
                                  policy=CONTROL_POLICY, curve=self.cfg.curve())
            deadline = None if duration_s is None else time.monotonic() + duration_s
            drain_until = None
            try:
                while not self.stop_event.is_set():
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        break
                    for child in self.children:
                        self._check(child, now)
                    captures = [c for c in self.children if c.name.startswith("capture-")]
                    if drain_until is None and captures and all(c.done for c in captures):
                        # Every source ended (loop: false): let the last frames through, then stop.
                        log.info("every source ended; stopping after %.1f s for the last frames", self.DRAIN_S)
                        drain_until = now + self.DRAIN_S
                    if drain_until is not None and now >= drain_until:
                        break
                    if control.poll(100, 1):  # zmq.POLLIN: a `streamcam streams` request, else the 0.1 s tick
                        self._serve_control(control)
            finally:
                self.shutdown()
            return self.summary()
        finally:
            if control is not None:
                control.close(0)
            self.unlock_run_dir()

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        """SIGTERM every child (sources first), SIGKILL what is left at the deadline, clean ipc files."""
        deadline = time.monotonic() + self.stop_timeout_s * 0.75
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.proc.kill()
                try:  # a SIGKILLed child is gone at once, but a loaded machine may reap it late
                    child.proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    log.error("%s (pid %d) still not reaped 5 s after SIGKILL", child.name, child.proc.pid)
        for child in self.children:
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
        for name in ENDPOINT_NAMES:
            path = ipc_path(self.cfg.endpoint(name))
            if path and os.path.exists(path):
                try:
                    os.unlink(path)
                except OSError as exc:
                    log.warning("cannot remove ipc socket %s: %s", path, exc)

    # -- reporting ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        stats = read_stats(self.run_dir)
        elapsed = (time.time_ns() - self.started_ns) / 1e9 if self.started_ns else 0.0
        out: dict[str, Any] = {
            "config": self.cfg.name, "run_dir": str(self.run_dir), "seconds": round(elapsed, 2),
            "restarts": {c.name: c.restarts for c in self.children if c.restarts},
            "stages": stats,
        }
        pub = stats.get("publisher", {}).get("streams", {})
        out["streams"] = {
            sid: {
                "fps": st.get("fps_overall"), "published": st.get("published"),
                "latency_ms_p50": st.get("latency_ms_p50"), "latency_ms_p99": st.get("latency_ms_p99"),
            }
            for sid, st in pub.items()
        }
        (self.run_dir / "summary.json").write_text(json.dumps(out, indent=1, default=float))
        return out


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"run {summary['config']}: {summary['seconds']} s, run dir {summary['run_dir']}"]
    stages = summary.get("stages", {})
    for sid, st in summary.get("streams", {}).items():
        cap = stages.get(f"capture-{sid}", {})
        lines.append(
            f"  stream {sid}: {st['fps'] or 0:.1f} fps published ({st['published']} frames), "
            f"capture→publish latency p50 {st['latency_ms_p50'] or float('nan'):.1f} ms, "
            f"p99 {st['latency_ms_p99'] or float('nan'):.1f} ms; captured {cap.get('captured', '?')}, "
            f"dropped at capture {cap.get('dropped', '?')}"
        )
    proc = stages.get("processor")
    if proc:
        lines.append(
            f"  processor ({proc.get('backend')}): {proc.get('processed')} frames, skipped {proc.get('skipped')} "
            f"(newest-frame policy), engine p50 {proc.get('engine_ms_p50') or float('nan'):.1f} ms"
        )
    workers = {name: st for name, st in stages.items() if name.startswith("worker-")}
    for name, st in sorted(workers.items()):
        lines.append(f"  {name} ({st.get('backend')}): {st.get('processed')} frames, skipped {st.get('skipped')}, "
                     f"engine p50 {st.get('engine_ms_p50') or float('nan'):.1f} ms")
    stab = stages.get("stabilizer")
    if stab:
        lines.append(f"  stabilizer: {stab.get('published')} results in seq order, late {stab.get('late')} (dropped)")
    if summary.get("restarts"):
        lines.append(f"  restarts: {summary['restarts']}")
    if not summary.get("streams"):
        lines.append("  no frames were published: see the logs under the run dir")
    return "\n".join(lines)


def print_plan(cfg: PipelineConfig) -> None:
    """What ``run`` and ``demo`` are about to start, one line a stage."""
    from . import __version__

    print(f"streamcam {__version__}: pipeline {cfg.name!r}")
    for s in cfg.streams:
        print(f"  capture {s.id}: {s.source.kind} {s.source.uri or ''} ({s.source.width}x{s.source.height} @ {s.source.fps:g} fps)")
    if cfg.scaled_out:
        print(f"  dispatcher: {cfg.endpoint('frames')} → {cfg.endpoint('work')} (workers connect)")
        print(f"  workers: {cfg.processor.workers} here, {cfg.model_path()} on {cfg.processor.backend}")
        print(f"  stabilizer: {cfg.endpoint('detected')} → {cfg.endpoint('results')}")
    else:
        print(f"  processor: {cfg.model_path()} on {cfg.processor.backend}")
    publish = cfg.endpoint("publish")
    where = f"; the port the OS picks is written to {cfg.run_dir}/bound/publisher.json" if publish.endswith(":*") else ""
    print(f"  publisher: {publish} (topics frames/<id>, detections/<id>{where})")
    if cfg.serve.enabled:
        print(f"  web page: http://{cfg.serve.host}:{cfg.serve.port}/")
    print(f"  run dir: {cfg.run_dir}   (Ctrl-C stops everything)")
    sys.stdout.flush()
