"""The deployment example (deploy/): every container's command is a streamcam command line this CLI
accepts, and the pipeline config, with each binding stage's own address set, passes validation."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

import conftest
from streamcam.cli import build_parser, parse_settings
from streamcam.config import load_config

DEPLOY = conftest.ROOT / "deploy"


def _commands() -> list[tuple[str, str]]:
    """``(where, shell line)`` of every container: compose services and Kubernetes Deployments."""
    out = []
    for name, svc in yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"].items():
        out.append((f"compose:{name}", svc["command"][0].replace("$$", "$")))
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "streamcam.yaml").read_text()):
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                out.append((f"k8s:{c['name']}", c["args"][0]))
    return out


def _argv(line: str) -> list[str]:
    # What sh -c would run, with a pod/container address and name in place of $POD_IP, $(hostname -i)...
    line = line.replace("$(hostname -i)", "10.1.2.3").replace("$(hostname)", "worker-1")
    line = line.replace("$POD_IP", "10.1.2.3").replace("$POD_NAME", "worker-abc12")
    argv = shlex.split(line)
    assert argv[:2] == ["exec", "streamcam"], line
    return argv[2:]


COMMANDS = _commands()


def test_every_stage_has_a_container_in_both_examples():
    stages = {where.split(":")[0]: set() for where, _ in COMMANDS}
    for where, line in COMMANDS:
        stages[where.split(":")[0]].add(_argv(line)[0])
    assert stages["compose"] == stages["k8s"] == {"dispatch", "stabilize", "publish", "process", "capture", "serve"}


@pytest.mark.parametrize("where, line", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_container_command_is_accepted_and_its_config_is_valid(where, line):
    args = build_parser().parse_args(_argv(line))
    if not hasattr(args, "config"):
        return  # serve: an endpoint, no config
    cfg = load_config(DEPLOY.parent / args.config, parse_settings(args.set))
    assert cfg.scaled_out and cfg.security.curve and cfg.processor.workers == 0
    assert Path(cfg.model_path()).is_file(), cfg.model_path()  # the image's layout is the checkout's
    if args.command == "capture":
        cfg.stream(args.stream)  # the stream exists
