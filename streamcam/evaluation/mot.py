"""MOTChallenge sequences: frames and ground truth, read as the benchmark defines them.

Layout of one sequence folder::

    seqinfo.ini          [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    img1/000001.jpg ...  frame n is file n (1-based)
    gt/gt.txt            frame, id, x, y, w, h, flag, ...   (pixels, (x, y) the top-left corner)

The 7th column is a flag: **0 means "ignore"** (the box is dropped from the ground
truth and kept apart in ``MotFrame.ignore``, so that an evaluation can leave detections
on it uncounted); every other value is kept (MOTChallenge 2015 files such as PETS09-S3-MF1
write -1 on every row, later ones 1). Columns after the 7th differ between benchmark
editions (world coordinates in 2015, class and visibility later) and are not read.
Boxes are clipped to the image (some extend past the edge); a box left with no area is
dropped. Malformed input raises :class:`streamcam.errors.DataError` naming the file and line.

The evaluation protocol of real footage: calibrate on the ``first`` half of a sequence,
test on the ``second`` (``MotSequence.half``; the first half is ``n // 2`` frames).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ..errors import DataError

Box = tuple[float, float, float, float]
Half = Literal["first", "second", "all"]
HALVES = ("first", "second", "all")
ENV_REAL_DATA = "STREAMCAM_REAL_DATA"


@dataclass(frozen=True)
class MotFrame:
    """One frame of a sequence and its ground truth."""

    index: int
    """Frame number, 1-based as in gt.txt."""
    path: Path
    """The image file."""
    gt: tuple[tuple[int, Box], ...]
    """``(id, (x0, y0, x1, y1))`` of the people to find, clipped to the image."""
    ignore: tuple[Box, ...] = ()
    """Boxes flagged 0 ("ignore"): neither to be found nor false when found."""


@dataclass(frozen=True)
class MotSequence:
    """A MOTChallenge sequence (or a half of one)."""

    name: str
    path: Path
    fps: float
    width: int
    height: int
    frames: tuple[MotFrame, ...]
    part: str = "all"
    """Which part of the sequence ``frames`` are: first, second or all."""
    clipped: int = 0
    """Ground-truth rows whose box was clipped to the image (the whole sequence)."""

    @property
    def boxes(self) -> int:
        return sum(len(f.gt) for f in self.frames)

    @property
    def ids(self) -> set[int]:
        return {i for f in self.frames for i, _ in f.gt}

    def half(self, which: Half) -> "MotSequence":
        """The ``first`` ``n // 2`` frames, the ``second`` (the rest) or ``all`` of a whole sequence."""
        if which not in HALVES:
            raise ValueError(f"half: expected one of {list(HALVES)}, got {which!r}")
        if which == "all":
            return self
        if self.part != "all":
            raise ValueError(f"half: {self.name} is already the {self.part} half")
        k = len(self.frames) // 2
        return replace(self, frames=self.frames[:k] if which == "first" else self.frames[k:], part=which)


def _seqinfo(path: Path) -> dict:
    ini = path / "seqinfo.ini"
    if not ini.is_file():
        raise DataError(f"{ini}: not found (a MOTChallenge sequence folder has seqinfo.ini, img1/, gt/gt.txt)")
    cp = configparser.ConfigParser()
    try:
        cp.read(ini)
        s = cp["Sequence"]
        return {"name": s.get("name", path.name), "imDir": s.get("imDir", "img1"), "imExt": s.get("imExt", ".jpg"),
                "frameRate": float(s["frameRate"]), "seqLength": int(s["seqLength"]),
                "imWidth": int(s["imWidth"]), "imHeight": int(s["imHeight"])}
    except (KeyError, ValueError, configparser.Error) as exc:
        raise DataError(f"{ini}: expected a [Sequence] section with numeric frameRate, seqLength, imWidth, "
                        f"imHeight, got an error: {exc!r}") from None


def read_gt(path: Path, length: int, width: int, height: int) -> tuple[dict[int, list], dict[int, list], int]:
    """``(kept, ignored, clipped)`` of a gt.txt: per frame ``[(id, box)]`` and ``[box]``; rows clipped."""
    kept: dict[int, list] = {}
    ignored: dict[int, list] = {}
    clipped = 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.replace(" ", "").split(",")
        where = f"{path}, line {n}"
        if len(cols) < 7:
            raise DataError(f"{where}: expected at least 7 comma-separated columns (frame, id, x, y, w, h, flag), "
                            f"got {len(cols)}: {line!r}")
        try:
            frame, tid = int(float(cols[0])), int(float(cols[1]))
            x, y, w, h, flag = (float(c) for c in cols[2:7])
        except ValueError:
            raise DataError(f"{where}: expected numbers in the first 7 columns, got {line!r}") from None
        if not 1 <= frame <= length:
            raise DataError(f"{where}: expected a frame number in 1..{length} (seqLength), got {frame}")
        if w < 0 or h < 0:
            raise DataError(f"{where}: expected a box width and height >= 0, got {w} x {h}")
        x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            clipped += 1
        if x1 <= x0 or y1 <= y0:
            continue  # wholly outside the image
        if flag == 0:
            ignored.setdefault(frame, []).append((x0, y0, x1, y1))
        else:
            kept.setdefault(frame, []).append((tid, (x0, y0, x1, y1)))
    return kept, ignored, clipped


def read_sequence(path: str | os.PathLike[str]) -> MotSequence:
    """Read a MOTChallenge sequence folder (see the module doc); every frame file must exist."""
    path = Path(path)
    info = _seqinfo(path)
    gt_file = path / "gt" / "gt.txt"
    if not gt_file.is_file():
        raise DataError(f"{gt_file}: not found (the ground truth of {info['name']})")
    length, w, h = info["seqLength"], info["imWidth"], info["imHeight"]
    kept, ignored, clipped = read_gt(gt_file, length, w, h)
    frames = []
    for i in range(1, length + 1):
        img = path / info["imDir"] / f"{i:06d}{info['imExt']}"
        if not img.is_file():
            raise DataError(f"{img}: not found (seqinfo.ini says seqLength={length})")
        frames.append(MotFrame(i, img, tuple(kept.get(i, ())), tuple(ignored.get(i, ()))))
    return MotSequence(info["name"], path, info["frameRate"], w, h, tuple(frames), clipped=clipped)


def real_data_dir(repo: str | os.PathLike[str] | None = None) -> Path:
    """Where the shared real sequences are: ``$STREAMCAM_REAL_DATA``, else ``<repo>/../shared/data/real``."""
    env = os.environ.get(ENV_REAL_DATA)
    if env:
        return Path(env)
    root = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    return root.parent / "shared" / "data" / "real"


def find_sequences(root: str | os.PathLike[str]) -> list[Path]:
    """The sequence folders (those holding seqinfo.ini) directly under ``root``, by name."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if (p / "seqinfo.ini").is_file()) if root.is_dir() else []
