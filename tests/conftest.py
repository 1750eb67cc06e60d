import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from tiny_model import make_tiny_gap_onnx

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    make_tiny_gap_onnx(str(path))
    return str(path)


@pytest.fixture
def short_tmp():
    """A short directory for ipc:// socket paths (the OS limits them to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="sc-", dir="/tmp")
    yield Path(d)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    has_gpu = os.path.exists("/dev/nvidia0")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU/driver on this machine"))
