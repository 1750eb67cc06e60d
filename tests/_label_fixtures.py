"""Tiny recordings for the labelling tests: an MJPG video, a PNG folder, a 16-bit thermal stack."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

W, H, N = 160, 120, 40


def frame_image(i: int) -> np.ndarray:
    """Frame ``i``: a background level that moves with ``i`` and a bright block at x = 2 i (BGR)."""
    img = np.full((H, W, 3), 20 + 5 * i, np.uint8)
    img[30:90, 2 * i:2 * i + 30] = (255, 200, 40)
    return img


def write_video(path: Path, n: int = N) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert vw.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(n):
        vw.write(frame_image(i))
    vw.release()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, read in order (the reference for seeking)."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def write_png_folder(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}.png"), frame_image(i))  # natural order: img2 before img10
    return folder


def write_thermal(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stack = np.stack([np.full((H, W), 3000 + 10 * i, np.uint16) for i in range(n)])
    for i in range(n):
        stack[i, 40:80, 50 + 5 * i:80 + 5 * i] = 6000
    np.save(folder / "seq.npy", stack)
    return folder
