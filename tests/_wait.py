"""The one wait of the tests: poll a condition until it holds, instead of sleeping a guessed time."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 8.0, poll: float = 0.05) -> Any:
    """``cond()``'s first truthy value, polled until ``timeout`` s; else an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(poll)
