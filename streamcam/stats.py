"""Counters, rates and latency percentiles a stage keeps, and how it reports them."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np


class LatencyWindow:
    """The last ``size`` latencies (ms), with percentiles over them and over the whole run."""

    def __init__(self, size: int = 2048) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        # A fixed histogram (0.1 ms bins up to 10 s) keeps whole-run percentiles in O(1) memory.
        self._hist = np.zeros(100_001, np.int64)
        self.count = 0

    def add(self, ms: float) -> None:
        self._recent.append(ms)
        self._hist[min(int(ms * 10.0), self._hist.size - 1) if ms > 0 else 0] += 1
        self.count += 1

    def recent(self, q: float) -> float | None:
        return float(np.percentile(np.fromiter(self._recent, float), q)) if self._recent else None

    def overall(self, q: float) -> float | None:
        if self.count == 0:
            return None
        cum = np.cumsum(self._hist)
        idx = int(np.searchsorted(cum, q / 100.0 * self.count))
        return (idx + 1) / 10.0


class Every:
    """``due()`` is True once per ``period_s`` of the monotonic clock: a stage loop's periodic report."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.period_s:
            return False
        self._last = now
        return True


class RateMeter:
    """Events per second over a sliding window of timestamps."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    @property
    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class SendTally:
    """What a stage loop sent on and what it dropped (the next stage's queue full), and the rate of
    the sent: ``tally(metrics.sent(...))`` counts one send and returns whether it went."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.sent = 0
        self.dropped = 0
        self.meter = RateMeter(window_s)

    def __call__(self, ok: bool) -> bool:
        if ok:
            self.sent += 1
            self.meter.tick()
        else:
            self.dropped += 1
        return ok

    @property
    def rate(self) -> float:
        return self.meter.rate


def write_stats(run_dir: str | os.PathLike[str] | None, name: str, stats: dict[str, Any]) -> None:
    """Atomically write ``<run_dir>/stats/<name>.json`` (read by the supervisor's summary)."""
    if run_dir is None:
        return
    d = Path(run_dir) / "stats"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{name}.json.tmp"
    tmp.write_text(json.dumps(stats, indent=1, default=float))
    os.replace(tmp, d / f"{name}.json")


def write_bound(run_dir: str | os.PathLike[str] | None, name: str, **addresses: str | None) -> None:
    """Atomically write ``<run_dir>/bound/<name>.json``: the addresses a stage really listens on
    (``publish``, ``metrics``), the OS-picked port when its config asked for any (``tcp://HOST:*``,
    ``metrics.base_port: 0``). Whoever connects reads them there (:func:`read_bound`); the supervisor
    clears the folder when a run starts, so a file there is this run's."""
    if run_dir is None:
        return
    d = Path(run_dir) / "bound"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{name}.json.tmp"
    tmp.write_text(json.dumps({k: v for k, v in addresses.items() if v is not None}))
    os.replace(tmp, d / f"{name}.json")


def read_bound(run_dir: str | os.PathLike[str], name: str) -> dict[str, str]:
    """What :func:`write_bound` wrote for stage ``name`` (``{}`` before it has bound)."""
    try:
        return json.loads((Path(run_dir) / "bound" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def read_stats(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    out = {}
    d = Path(run_dir) / "stats"
    if d.is_dir():
        for f in sorted(d.glob("*.json")):
            try:
                out[f.stem] = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
    return out
