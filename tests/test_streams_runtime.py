"""Streams added and removed while the pipeline runs: `streamcam streams add|remove|list` against a
real `streamcam run` (its supervisor's control endpoint), frames of the new stream published."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

import conftest
from _wait import wait_for
from streamcam.lifecycle import terminate

ROOT = conftest.ROOT


def _streams(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamcam", "streams", *args[:1], str(cfg), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def _published(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "stats" / "publisher.json").read_text()).get("streams", {})
    except (OSError, ValueError):
        return {}


def _count_settled(run_dir: Path, stream: str):
    """A condition: two successive publisher reports (rewritten once a second) give ``stream`` the
    same published count, i.e. nothing of it is in flight any more."""
    path, reports = run_dir / "stats" / "publisher.json", []

    def settled() -> bool:
        try:
            before = path.stat().st_mtime_ns
            n = _published(run_dir)[stream]["published"]
            if path.stat().st_mtime_ns != before:  # rewritten while read: which report it was is unknown
                return False
        except (OSError, KeyError):
            return False
        if not reports or reports[-1][0] != before:
            reports.append((before, n))
        return len(reports) >= 2 and reports[-1][1] == reports[-2][1]

    return settled


def test_streams_added_and_removed_at_run_time(tmp_path):
    run_dir = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "runtime", "streams": [{"id": "a"}], "processor": {"model": str(ROOT / "engines/person-ir.onnx")},
        "serve": {"enabled": False}, "endpoints": {"publish": "tcp://127.0.0.1:*"}, "run": {"run_dir": str(run_dir)}}))
    sup = subprocess.Popen([sys.executable, "-m", "streamcam", "run", str(cfg)], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("stream a's first frames", lambda: _published(run_dir).get("a", {}).get("published", 0) > 5, 60)
        r = _streams(cfg, "add", "--id", "b", "--source", "{kind: synthetic, seed: 9, fps: 15}")
        assert r.returncode == 0 and r.stdout.split() == ["a", "synthetic", "b", "synthetic"], r.stdout + r.stderr
        wait_for("the added stream's frames", lambda: _published(run_dir).get("b", {}).get("published", 0) > 5, 60)
        # A bad stream is refused with the key named, and changes nothing.
        bad = _streams(cfg, "add", "--id", "c", "--source", "{kind: url, uri: ftp://x}")
        assert bad.returncode != 0 and "streams[2].source.uri" in bad.stderr, bad.stderr
        dup = _streams(cfg, "add", "--id", "a", "--source", "{kind: synthetic}")
        assert dup.returncode != 0 and "duplicate stream id 'a'" in dup.stderr, dup.stderr
        r = _streams(cfg, "remove", "--id", "a")
        assert r.returncode == 0 and r.stdout.split() == ["b", "synthetic"], r.stdout + r.stderr
        wait_for("the removed stream's last frames published", _count_settled(run_dir, "a"), 15)
        before = _published(run_dir)
        time.sleep(2.0)  # what is tested: over the next 2 s, a publishes nothing more and b goes on
        after = _published(run_dir)
        assert after["a"]["published"] == before["a"]["published"]  # its capture is stopped
        assert after["b"]["published"] > before["b"]["published"]  # the other goes on, no restart
        last = _streams(cfg, "remove", "--id", "b")
        assert last.returncode != 0 and "last stream" in last.stderr
        assert _streams(cfg, "list").stdout.split() == ["b", "synthetic"]
    finally:
        terminate(sup, 20)
    assert sup.returncode == 0


def test_streams_command_without_a_running_pipeline_says_so(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "none", "run": {"run_dir": str(tmp_path / "run")}}))
    r = subprocess.run([sys.executable, "-m", "streamcam", "streams", "list", str(cfg)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "is the pipeline running" in r.stderr, r.stderr
