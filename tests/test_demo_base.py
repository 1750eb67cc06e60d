"""`streamcam demo` on the base install: no matplotlib (the report extra), no traceback."""

import os
import re
import subprocess
import sys

import pytest

from _pipeline_fixtures import published


@pytest.mark.slow
def test_demo_without_matplotlib_runs_and_says_the_plots_need_the_extra(tmp_path, short_tmp):
    # The import system itself refuses matplotlib, as on a plain `pip install .`.
    block = tmp_path / "block" / "matplotlib"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block.parent), os.getcwd()]))
    run_dir = short_tmp / "run"  # short: its ipc:// sockets live there
    # A run dir and a publish port of its own: a second run on this machine (the default's fixed port
    # 5560, its runs/default lock) must not collide with this one.
    r = subprocess.run([sys.executable, "-m", "streamcam", "demo", "--seconds", "4", "--no-serve", "--record", "0",
                        "--set", "endpoints.publish=tcp://127.0.0.1:*", "--set", f"run.run_dir={run_dir}"],
                       capture_output=True, text=True, timeout=240, env=env)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    assert "plots skipped" in out and "streamcam[report]" in out, out[-2000:]
    assert "localization" in out  # the demo ran to its end
    assert r.returncode in (0, 1), out[-2000:]  # 1: a target missed on a loaded machine, not a crash
    # It published on the port the OS picked, in the run dir it was given.
    pub = published(run_dir, timeout=0.0)
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", pub) and pub != "tcp://127.0.0.1:5560", pub
    assert "bound/publisher.json" in out  # the plan says where the port the OS picked is written


def test_report_without_matplotlib_is_one_clear_error(tmp_path):
    block = tmp_path / "block" / "matplotlib"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block.parent), os.getcwd()]))
    r = subprocess.run([sys.executable, "-m", "streamcam", "report", str(tmp_path)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'streamcam[report]'" in r.stderr
