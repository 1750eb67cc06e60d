"""The package's rooms import each other one way only: no two rooms (sub-packages and top-level
modules of streamcam) import each other, at module level or inside functions (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict

import conftest

PACKAGE = conftest.ROOT / "streamcam"


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def room_imports() -> dict[str, set[str]]:
    """``{room: rooms it imports}`` from every ``import``/``from`` statement in the package."""
    edges: dict[str, set[str]] = defaultdict(set)
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if f.name == "__init__.py" else rel.parts)
        package = module if f.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t.startswith("streamcam.") and _room(t) != _room(module):
                    edges[_room(module)].add(_room(t))
    return edges


def test_no_two_rooms_import_each_other():
    edges = room_imports()
    assert edges["processor"] and edges["gpu"]  # the walk sees imports at all
    circles = sorted({tuple(sorted((a, b))) for a, bs in edges.items() for b in bs if a in edges.get(b, ())})
    assert circles == [], circles


def test_config_loads_no_scipy():
    """Every stage imports the config; scipy (~0.6 s) loads only where tracks are made."""
    code = "import sys, streamcam.config; print('scipy' in sys.modules, 'streamcam.stabilizer.peaks' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert r.stdout.split() == ["False", "False"], r.stdout + r.stderr


def test_config_reads_the_stabilizer_settings_without_the_stabilizer():
    """config.py imports only the stabilizer's config module (numpy-only), never the stabilizer itself."""
    code = ("import sys, streamcam.config; "
            "print(sorted(m for m in sys.modules if m.startswith('streamcam.stabilizer.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert r.returncode == 0, r.stderr
    assert eval(r.stdout) == ["streamcam.stabilizer.box_correction", "streamcam.stabilizer.config",
                              "streamcam.stabilizer.kalman"], r.stdout


def test_the_stabilizer_is_one_name():
    """One room, one section, one settings class: the pipeline config's ``stabilizer`` is the
    ``StabilizerConfig`` the ``Stabilizer`` runs with; the package names each from its module."""
    import streamcam.stabilizer as room
    from streamcam.config import PipelineConfig
    from streamcam.stabilizer.box_correction import BoxCorrection
    from streamcam.stabilizer.config import StabilizerConfig
    from streamcam.stabilizer.stabilizer import Stabilizer

    assert (room.BoxCorrection, room.StabilizerConfig, room.Stabilizer) == (BoxCorrection, StabilizerConfig, Stabilizer)
    assert isinstance(PipelineConfig().stabilizer, StabilizerConfig)
    assert not (PACKAGE / "tracking").exists()


def test_the_synthetic_scene_is_a_dataset_the_capture_room_plays():
    """The scene lives in datasets/; the capture room imports it (and keeps the old import path)."""
    from streamcam.capture import synthetic as old
    from streamcam.datasets import synthetic
    assert old.SyntheticIRScene is synthetic.SyntheticIRScene and old.SceneFrame is synthetic.SceneFrame
    edges = room_imports()
    assert "datasets" in edges["capture"] and "capture" not in edges.get("datasets", set())


def test_a_module_over_450_lines_says_why_at_its_top():
    """Modules stay small (one concept each); the few longer ones give their reason in their docstring."""
    long = {}
    for f in PACKAGE.rglob("*.py"):
        n = len(f.read_text().splitlines())
        if n > 450:
            doc = ast.get_docstring(ast.parse(f.read_text())) or ""
            long[str(f.relative_to(PACKAGE))] = "Why" in doc and "lines" in doc
    assert long and all(long.values()), {k: v for k, v in long.items() if not v}


CROSS_CUTTING = {"test_pipeline.py", "test_hostile.py", "test_hardening.py", "test_run_dir.py", "test_streams_runtime.py",
                 "test_layout.py", "test_deploy.py", "test_bench.py", "test_machine_info.py", "test_tolerance.py"}
"""Tests of the whole (processes of every room, the tree, deploy/, tools/, the tests' own helpers)."""


def test_the_tests_mirror_the_package():
    """A test module sits in the folder of the room it tests (``tests/<room>/`` for ``streamcam/<room>/``),
    at the root for a ground-floor module (``tests/test_<module>[_*].py`` for ``streamcam/<module>.py``),
    or at the root among the few that span rooms; shared fixtures stay at the root."""
    tests = PACKAGE.parent / "tests"
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    misplaced = []
    for f in sorted(tests.rglob("test_*.py")):
        rel = f.relative_to(tests)
        if len(rel.parts) == 1:
            ok = f.name in CROSS_CUTTING or any(f.stem == f"test_{m}" or f.stem.startswith(f"test_{m}_") for m in modules)
        else:
            ok = len(rel.parts) == 2 and rel.parts[0] in rooms
        if not ok:
            misplaced.append(rel.as_posix())
    assert misplaced == [], misplaced
    assert {p.name for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py"))} <= rooms
