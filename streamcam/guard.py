"""One message never stops a stage: the broad ``except`` around the handling of one message.

Decoding rejects what the protocol forbids (:class:`~streamcam.protocol.RejectCounter`);
this guard catches what slips past it: a bug, or an input no validation anticipated.
The failure is counted under a reason (the exception's type, ``error:OverflowError``) in
the stage's stats and metrics, logged with its traceback the first time that reason
occurs (never for every message: a hostile client must not fill the disk), and the stage
goes on with the next message. Only ``Exception`` is caught: ``KeyboardInterrupt`` and
``SystemExit`` still take the designed shutdown path.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator


class MessageGuard:
    """``with guard.message(stream): handle(msg)`` counts and logs what escapes, then returns."""

    def __init__(self, stage: str, metrics: Any, log: logging.Logger) -> None:
        self.stage = stage
        self.counts: Counter[str] = Counter()
        self._metrics = metrics
        self._log = log

    @contextmanager
    def message(self, stream: str = "") -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 (the one place a stage loop may catch everything)
            self.failed(exc, stream)

    def failed(self, exc: BaseException, stream: str = "") -> str:
        """Count one failed message under ``error:<ExceptionType>``; the reason is returned."""
        reason = f"error:{type(exc).__name__}"
        self.counts[reason] += 1
        self._metrics.failed.labels(self.stage, reason).inc()
        if self.counts[reason] == 1:
            self._log.error("%s: a message of stream %r failed (%s; counted, logged once per reason)",
                            self.stage, stream[:40], reason, exc_info=exc)
        return reason

    @property
    def total(self) -> int:
        return sum(self.counts.values())
