"""Reconnect with exponential backoff: live sources that drop come back by themselves."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..errors import SourceError
from .frames import Source, SourceFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceEvent:
    """What :class:`ReconnectingSource` reports to ``on_event`` (and logs)."""

    kind: str
    """"opened", "dropped", "open_failed", "waiting" or "reconnected"."""
    detail: str
    attempt: int = 0
    """Reopen attempts since the last good frame."""
    delay_s: float = 0.0
    """For "waiting": the backoff before the next attempt."""


class ReconnectingSource:
    """Keeps a live source going: on a failure it closes, waits, reopens and carries on.

    ``open_fn`` builds the inner source (and raises SourceError when it cannot). Nothing
    is opened before the first ``read()`` unless ``open_now``. On a SourceError from opening or reading, the
    wait before the next attempt starts at ``initial_s`` and doubles up to ``max_s``; it
    resets after a good frame. It never gives up: only :meth:`close` (from any thread,
    also during a wait, which it interrupts at once) ends it, and ``read()`` then
    returns None. The end of a finite inner stream (None) is passed through. A read
    blocked inside the device returns first (URLs: ``read_timeout_s``); the inner source
    is then closed by the reading thread, never under it.
    ``sleep`` replaces the interruptible wait (tests pass a recorder).
    """

    def __init__(
        self,
        open_fn: Callable[[], Source],
        initial_s: float = 0.5,
        max_s: float = 10.0,
        on_event: Optional[Callable[[SourceEvent], None]] = None,
        sleep: Optional[Callable[[float], None]] = None,
        name: str = "source",
        open_now: bool = False,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"ReconnectingSource: expected 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self._open_fn = open_fn
        self.initial_s = float(initial_s)
        self.max_s = float(max_s)
        self._on_event = on_event
        self._sleep = sleep
        self.name = name
        self._inner: Optional[Source] = None
        self._closed = threading.Event()
        self._lock = threading.Lock()  # held by read(); close() never closes the inner source under a reader
        self._delay = self.initial_s
        self._attempt = 0
        self._failed = False
        self._index = 0
        self.reconnects = 0
        """Successful reopens after a failure (the first open is not counted)."""
        self.failures = 0
        """Failed opens and reads."""
        if open_now:
            # One eager, non-fatal attempt (so ``fps`` is known early); failures are retried by read().
            try:
                self._inner = open_fn()
                self._emit("opened", repr(self._inner))
            except SourceError as exc:
                self.failures += 1
                self._failed = True
                self._emit("open_failed", str(exc), level=logging.WARNING)

    def __repr__(self) -> str:
        return f"ReconnectingSource({self.name!r})"

    @property
    def fps(self) -> Optional[float]:  # type: ignore[override]
        inner = self._inner
        return getattr(inner, "fps", None) if inner is not None else None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _emit(self, kind: str, detail: str, delay_s: float = 0.0, level: int = logging.INFO) -> None:
        log.log(level, "%s: %s: %s%s", self.name, kind, detail, f" (retry in {delay_s:.2f}s)" if delay_s else "")
        if self._on_event is not None:
            self._on_event(SourceEvent(kind, detail, self._attempt, delay_s))

    def _drop_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            try:
                inner.close()
            except Exception as exc:  # cleanup of a broken source: log, never mask the original failure
                log.warning("%s: closing the failed source raised %r", self.name, exc)

    def _fail(self, kind: str, exc: SourceError) -> None:
        self.failures += 1
        self._failed = True
        self._drop_inner()
        delay = self._delay
        self._emit(kind, str(exc), delay, logging.WARNING)
        if self._closed.is_set():
            return
        if self._sleep is not None:
            self._sleep(delay)
        else:
            self._closed.wait(delay)
        self._delay = min(self._delay * 2.0, self.max_s)

    def read(self) -> Optional[SourceFrame]:
        with self._lock:
            try:
                while not self._closed.is_set():
                    if self._inner is None:
                        self._attempt += 1
                        try:
                            self._inner = self._open_fn()
                        except SourceError as exc:
                            self._fail("open_failed", exc)
                            continue
                        if self._failed:
                            self.reconnects += 1
                            self._emit("reconnected", f"attempt {self._attempt}, reconnect #{self.reconnects}")
                        else:
                            self._emit("opened", repr(self._inner))
                    try:
                        frame = self._inner.read()
                    except SourceError as exc:
                        self._fail("dropped", exc)
                        continue
                    if frame is None:
                        return None
                    self._delay = self.initial_s
                    self._attempt = 0
                    self._failed = False
                    frame = replace(frame, index=self._index)
                    self._index += 1
                    return frame
                return None
            finally:
                if self._closed.is_set():
                    self._drop_inner()

    def close(self) -> None:
        self._closed.set()
        if self._lock.acquire(blocking=False):
            try:
                self._drop_inner()
            finally:
                self._lock.release()
        # else: the reader holds the lock and closes the inner source on its way out.
