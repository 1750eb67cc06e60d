"""Transport: frames/s and latency of raw BGR frames between two processes, streamcam vs imagezmq.

For each frame size (640x480, 1920x1080 BGR) and link (``ipc://``, ``tcp://127.0.0.1``):

* ``streamcam PUSH/PULL`` and ``streamcam PUB/SUB``: sockets from ``streamcam.transport.make_socket``
  (its policy: small HWMs, LINGER 0, IMMEDIATE on PUSH), messages from ``protocol.encode`` sent
  with ``send_nowait`` (zero-copy), received and validated by ``protocol.decode`` (zero-copy views).
* ``imagezmq PUB/SUB`` and ``imagezmq REQ/REP``: ``ImageSender.send_image`` / ``ImageHub.recv_image``
  with imagezmq's defaults.

The receiver is a separate process (``multiprocessing`` spawn). The sender offers frames as fast
as it can (a saturated link: the worst case for latency) and stamps each with ``time.time_ns()``;
the receiver counts delivered frames over a fixed window and records send->receive latency.
A PUSH sender that finds the queue full counts a drop and waits for POLLOUT (no busy spin).
The ceiling is a plain ``memcpy`` (``np.copyto``) of the same bytes in one process.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from typing import Any

import numpy as np

from . import free_tcp_port, median, peer_available, percentile, verdict

SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
METHODS = ("streamcam PUSH/PULL", "streamcam PUB/SUB", "imagezmq PUB/SUB", "imagezmq REQ/REP")
TARGET_THROUGHPUT = 1.5


def _endpoint(link: str, tmp: str, n: int) -> str:
    return f"ipc://{tmp}/t{n}.sock" if link == "ipc" else f"tcp://127.0.0.1:{free_tcp_port()}"


def _receiver(method: str, endpoint: str, warmup_s: float, window_s: float, ready, done, stop, results) -> None:
    """Child process: receive until ``stop``; report frames/s and latencies over one window."""
    import zmq

    lat_ms: list[float] = []
    frames = 0
    t_start = t_end = None
    sock = hub = None
    if method.startswith("streamcam"):
        from streamcam import protocol
        from streamcam.transport import make_socket

        ctx = zmq.Context()
        if method.endswith("PUSH/PULL"):
            sock = make_socket(ctx, "PULL", endpoint, bind=True)
        else:
            sock = make_socket(ctx, "SUB", endpoint, bind=False, subscribe="frame/")

        def recv() -> int | None:
            if not sock.poll(100, zmq.POLLIN):
                return None
            msg = protocol.decode(sock.recv_multipart(copy=False))
            return msg.t_capture_ns
    else:
        import imagezmq

        reqrep = method.endswith("REQ/REP")
        hub = imagezmq.ImageHub(open_port=endpoint, REQ_REP=reqrep)
        poller = zmq.Poller()
        poller.register(hub.zmq_socket, zmq.POLLIN)

        def recv() -> int | None:
            if not poller.poll(100):
                return None
            text, image = hub.recv_image()
            if reqrep:
                hub.send_reply(b"OK")
            return int(text)

    ready.set()
    first = None
    while not stop.is_set():
        t_sent = recv()
        if t_sent is None:
            continue
        now = time.time_ns()
        if done.is_set():
            continue
        if first is None:
            first = now
        if t_start is None:
            if now - first >= warmup_s * 1e9:
                t_start = now
            continue
        frames += 1
        lat_ms.append((now - t_sent) / 1e6)
        if now - t_start >= window_s * 1e9:
            t_end = now
            results.put({"frames": frames, "seconds": (t_end - t_start) / 1e9, "lat_ms": lat_ms})
            done.set()
    if sock is not None:
        sock.close(0)
    if hub is not None:
        hub.close()


def _sender(method: str, endpoint: str, frame: np.ndarray, done, timeout_s: float) -> int:
    """Offer frames as fast as the link takes them until the receiver is done; returns drops counted."""
    import zmq

    drops = 0
    deadline = time.monotonic() + timeout_s
    seq = 0
    if method.startswith("streamcam"):
        from streamcam import protocol
        from streamcam.transport import make_socket, send_nowait

        ctx = zmq.Context()
        push = method.endswith("PUSH/PULL")
        sock = make_socket(ctx, "PUSH" if push else "PUB", endpoint, bind=not push)
        try:
            while not done.is_set() and time.monotonic() < deadline:
                parts = protocol.encode("frame", "b0", seq, time.time_ns(), [protocol.raw_part("image", frame, "BGR8")])
                seq += 1
                if not send_nowait(sock, parts):
                    drops += 1
                    sock.poll(50, zmq.POLLOUT)
        finally:
            sock.close(0)
            ctx.term()
        return drops
    import imagezmq

    reqrep = method.endswith("REQ/REP")
    sender = imagezmq.ImageSender(connect_to=endpoint, REQ_REP=reqrep)
    sender.zmq_socket.setsockopt(zmq.LINGER, 0)
    if reqrep:
        sender.zmq_socket.setsockopt(zmq.RCVTIMEO, 2000)
    try:
        while not done.is_set() and time.monotonic() < deadline:
            try:
                sender.send_image(str(time.time_ns()), frame)
            except zmq.Again:
                break
    finally:
        sender.close()
    return drops


def trial(method: str, link: str, frame: np.ndarray, tmp: str, n: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    """One sender/receiver run: frames/s, MB/s, latency p50/p99 (ms), sender drops."""
    ctx = mp.get_context("spawn")
    endpoint = _endpoint(link, tmp, n)
    ready, done, stop = ctx.Event(), ctx.Event(), ctx.Event()
    results = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(method, endpoint, warmup_s, window_s, ready, done, stop, results), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"{method}: receiver did not start")
        time.sleep(0.05)  # let a binding receiver be listening before a connecting sender
        drops = _sender(method, endpoint, frame, done, timeout_s=warmup_s + window_s + 20)
        res = results.get(timeout=10)
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(2)
    fps = res["frames"] / res["seconds"]
    return {"fps": fps, "MBps": fps * frame.nbytes / 1e6, "p50_ms": percentile(res["lat_ms"], 50),
            "p99_ms": percentile(res["lat_ms"], 99), "drops": drops}


def memcpy_rate(nbytes: int, seconds: float = 0.3) -> float:
    """Bytes/s of ``np.copyto`` between two fresh buffers of ``nbytes`` (best of the window's calls)."""
    src = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, nbytes / (time.perf_counter() - t0))
    return best


def run(quick: bool = False, sizes: tuple[str, ...] | None = None, links: tuple[str, ...] = ("ipc", "tcp"),
        rounds: int | None = None, window_s: float | None = None, warmup_s: float | None = None) -> dict[str, Any]:
    sizes = sizes or tuple(SIZES)
    rounds = rounds or (1 if quick else 3)
    window_s = window_s or (0.3 if quick else 1.0)
    warmup_s = warmup_s if warmup_s is not None else (0.1 if quick else 0.3)
    ok, why = peer_available("imagezmq")
    methods = [m for m in METHODS if ok or not m.startswith("imagezmq")]
    skipped = {} if ok else {"imagezmq": why}
    rows = []
    n = 0
    with tempfile.TemporaryDirectory(prefix="scb-") as tmp:
        for size in sizes:
            h, w = SIZES[size]
            frame = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
            for link in links:
                trials: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
                copies: list[float] = []
                for r in range(rounds):
                    copies.append(memcpy_rate(frame.nbytes, 0.1 if quick else 0.3))
                    for m in (methods if r % 2 == 0 else methods[::-1]):
                        n += 1
                        trials[m].append(trial(m, link, frame, tmp, n, warmup_s, window_s))
                ceiling = median(copies)
                for m in methods:
                    ts = trials[m]
                    row = {"size": size, "link": link, "method": m,
                           "fps": median([t["fps"] for t in ts]), "MBps": median([t["MBps"] for t in ts]),
                           "p50_ms": median([t["p50_ms"] for t in ts]), "p99_ms": median([t["p99_ms"] for t in ts]),
                           "drops": int(sum(t["drops"] for t in ts)), "memcpy_MBps": ceiling / 1e6}
                    row["of_memcpy"] = row["MBps"] * 1e6 / ceiling
                    rows.append(row)
                # Targets: each streamcam pattern against imagezmq's best mode (by throughput) in this cell.
                peers = [r for r in rows[-len(methods):] if r["method"].startswith("imagezmq")]
                if peers:
                    best = max(peers, key=lambda r: r["fps"])
                    for r in rows[-len(methods):]:
                        if r["method"].startswith("streamcam"):
                            sc = [t["fps"] for t in trials[r["method"]]]
                            pe = [t["fps"] for t in trials[best["method"]]]
                            r["speedup"] = median([a / b for a, b in zip(sc, pe)])
                            r["vs"] = best["method"]
                            r["verdict"] = verdict(r["speedup"] >= TARGET_THROUGHPUT and r["p99_ms"] < best["p99_ms"])
    return {"rows": rows, "skipped": skipped, "rounds": rounds, "window_s": window_s}


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1, default=str))
