"""The stdlib HTTP server the project's small pages run on (the MJPEG bridge, the labelling page).

One thread per client (daemon threads: a stop never waits for a stalled browser), and a client
that goes away mid-response is a debug line, not a traceback: browsers drop MJPEG streams and
image requests all the time.
"""

from __future__ import annotations

import logging
import socket
import sys
from http.server import ThreadingHTTPServer
from typing import Any

log = logging.getLogger("streamcam.http")

DISCONNECT = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, socket.timeout)
"""What a client that went away raises while a response is written."""


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose client disconnects are logged at debug level, other errors in full."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECT):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("error serving %s", client_address)


__all__ = ["DISCONNECT", "QuietThreadingHTTPServer"]
