"""Headless Chromium for the viewer tests, driven by selenium; skips (with the reason) when absent.

CI installs the browser with ``apt-get install -y chromium chromium-driver`` (Debian) and
selenium with pip. ``STREAMCAM_CHROMIUM`` / ``STREAMCAM_CHROMEDRIVER`` override the paths.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from _wait import wait_for  # noqa: F401 (browser.wait_for: the tests' one wait, in _wait.py)

# The machine may have no network: without these flags Chromium keeps trying to reach
# Google services (updates, sync, QUIC probes) and fills the log with refused connections.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
INSTALL_HINT = "apt-get install -y chromium chromium-driver && pip install selenium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
"""Where browser tests keep what a person should look at (gitignored)."""


def _which(env: str, *names: str) -> Optional[str]:
    if os.environ.get(env):
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_browser() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths, or ``pytest.skip`` saying what is missing."""
    chromium = _which("STREAMCAM_CHROMIUM", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    driver = _which("STREAMCAM_CHROMEDRIVER", "chromedriver")
    missing = [what for what, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
    if missing:
        pytest.skip(f"headless browser test needs {' and '.join(missing)} on PATH ({INSTALL_HINT})")
    return chromium, driver  # type: ignore[return-value]


def chromium_driver() -> Iterator[Any]:
    """A selenium WebDriver for headless Chromium with a fresh profile; quits and cleans up after."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed ({INSTALL_HINT})")
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = find_browser()
    profile = tempfile.mkdtemp(prefix="sc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    except Exception as exc:  # noqa: BLE001 (a broken browser install is a skip, with its message)
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"cannot start headless chromium ({chromium}, {chromedriver}): {str(exc).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def artifact_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
