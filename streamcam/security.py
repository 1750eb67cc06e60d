"""ZeroMQ CURVE authentication and encryption for tcp endpoints.

Layout of a keys directory (``streamcam keys DIR`` makes it):

    DIR/server.key           the server public key (give it to clients)
    DIR/server.key_secret    the server key pair (binding stages only)
    DIR/client.key_secret    this host's client key pair (connecting stages and subscribers)
    DIR/allowed/*.key        public keys of clients allowed to connect

Every socket that *binds* a tcp endpoint is a CURVE server and accepts only clients
whose public key is in ``allowed/`` (checked by a ZAP authenticator thread); every
socket that *connects* is a CURVE client. A client without an allowed key can neither
subscribe to the publisher nor push frames: its handshake is refused, nothing flows.
ipc/inproc endpoints are protected by file permissions and are left unencrypted.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq

from .errors import ConfigError

log = logging.getLogger(__name__)


def generate_keys(directory: str | os.PathLike[str], client_name: str = "client") -> dict[str, str]:
    """Create server and client key pairs in ``directory`` and allow the client; returns the paths."""
    import zmq.auth

    d = Path(directory)
    allowed = d / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    out = {}
    if not (d / "server.key_secret").exists():
        pub, sec = zmq.auth.create_certificates(str(d), "server")
        out["server_public"], out["server_secret"] = pub, sec
    pub, sec = zmq.auth.create_certificates(str(d), client_name)
    shutil.copy(pub, allowed / Path(pub).name)
    os.chmod(sec, 0o600)
    if (d / "server.key_secret").exists():
        os.chmod(d / "server.key_secret", 0o600)
    out["client_public"], out["client_secret"] = pub, sec
    out["allowed"] = str(allowed / Path(pub).name)
    return out


@dataclass(frozen=True)
class Curve:
    """Applies CURVE to sockets of one process; one ZAP authenticator per context that binds."""

    keys_dir: str
    client_name: str = "client"

    def __post_init__(self) -> None:
        d = Path(self.keys_dir)
        for name in ("server.key", f"{self.client_name}.key_secret"):
            if not (d / name).is_file():
                raise ConfigError(f"security.keys_dir: {d / name} not found (create keys with `streamcam keys {d}`)")
        if not zmq.has("curve"):
            raise ConfigError("security.curve: this libzmq has no CURVE support (install pyzmq's bundled wheel)")

    def _load(self, name: str) -> tuple[bytes, bytes | None]:
        import zmq.auth

        return zmq.auth.load_certificate(str(Path(self.keys_dir) / name))

    def apply(self, sock: zmq.Socket, bind: bool, endpoint: str) -> None:
        if not endpoint.startswith("tcp://"):
            return
        if bind:
            pub, sec = self._load("server.key_secret")
            if sec is None:
                raise ConfigError(f"security.keys_dir: {self.keys_dir}/server.key_secret has no secret key")
            _ensure_authenticator(sock.context, str(Path(self.keys_dir) / "allowed"))
            sock.curve_secretkey = sec
            sock.curve_publickey = pub
            sock.curve_server = True
        else:
            pub, sec = self._load(f"{self.client_name}.key_secret")
            server_pub, _ = self._load("server.key")
            sock.curve_secretkey = sec
            sock.curve_publickey = pub
            sock.curve_serverkey = server_pub


_AUTHENTICATORS: dict[int, object] = {}


def _ensure_authenticator(ctx: zmq.Context, allowed_dir: str) -> None:
    from zmq.auth.thread import ThreadAuthenticator

    if id(ctx) in _AUTHENTICATORS:
        return
    if not os.path.isdir(allowed_dir):
        raise ConfigError(f"security.keys_dir: {allowed_dir} (allowed client keys) not found")
    auth = ThreadAuthenticator(ctx, log=logging.getLogger("streamcam.auth"))
    auth.start()
    auth.configure_curve(domain="*", location=allowed_dir)
    _AUTHENTICATORS[id(ctx)] = auth


def stop_authenticators(ctx: zmq.Context | None = None) -> None:
    """Stop the ZAP thread of ``ctx`` (None: of every context). Its socket lives in the context, so
    ``ctx.term()`` waits for it forever: whoever terminates a context it bound CURVE sockets on
    calls this first (the dispatcher's own context; the tests' contexts)."""
    for key in [id(ctx)] if ctx is not None else list(_AUTHENTICATORS):
        auth = _AUTHENTICATORS.pop(key, None)
        if auth is None:
            continue
        try:
            auth.stop()  # type: ignore[attr-defined]
        except Exception as exc:  # cleanup: log, don't mask the real exit path
            log.warning("stopping the ZAP authenticator failed: %s", exc)
