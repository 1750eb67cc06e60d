"""The webhook sink: each event as an HTTP POST of its JSON object, behind a bounded queue.

One sender thread per URL. An attempt that times out, cannot connect or gets a 5xx means
the endpoint is *down*: the event stays at the head of the queue and is tried again after
a backoff that doubles from ``backoff_s`` up to 30 s, so nothing is lost while the queue
holds (the oldest event is dropped and counted beyond ``queue_size``). A 4xx means the
endpoint *rejects this event*: it is tried ``retries`` more times, then given up (counted).
:meth:`WebhookSink.send` never blocks.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

from .config import WebhookConfig
from .outbox import Outbox

log = logging.getLogger("streamcam.events.webhook")

_MAX_BACKOFF_S = 30.0


class WebhookSink(Outbox):
    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config.queue_size)  # dropped: queue_full (down too long), rejected (4xx after the retries)
        self.config = config
        self.sent = 0
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)

    def _post(self, event: dict[str, Any]) -> int:
        """One attempt: the HTTP status, or 0 when the endpoint could not be reached."""
        self.attempts += 1
        req = urllib.request.Request(self.config.url, data=json.dumps(event).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "streamcam"})
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.debug("webhook %s: %s", self.config.url, exc)
            return 0

    def _loop(self) -> None:
        backoff = self.config.backoff_s
        rejections = 0
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._stop.is_set() or bool(self._queue), timeout=0.5)
                if self._stop.is_set() or not self._queue:
                    continue
                event = self._queue[0]
            status = self._post(event)
            if 200 <= status < 300 or (400 <= status < 500 and rejections >= self.config.retries):
                # off the queue before it is counted: whoever reads `sent` / `dropped` then sees it gone
                with self._cond:
                    if self._queue and self._queue[0] is event:
                        self._queue.popleft()
                if status >= 400:
                    self.dropped["rejected"] += 1
                    log.warning("webhook %s rejected event %s with %d; given up", self.config.url,
                                event.get("id"), status)
                else:
                    self.sent += 1
                backoff, rejections = self.config.backoff_s, 0
                continue
            if 400 <= status < 500:
                rejections += 1
            elif backoff == self.config.backoff_s:
                log.warning("webhook %s is down (%s); events wait in the queue", self.config.url, status or "no answer")
            self._stop.wait(backoff)
            backoff = min(backoff * 2.0, _MAX_BACKOFF_S)
