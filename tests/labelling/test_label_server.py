"""The labelling server over real loopback HTTP: session, frames, saves, and bad requests -> 400 naming the field."""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.request
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

from _label_fixtures import H, N, W, write_video
from _wait import wait_for
from streamcam.capture.indexed import IndexedFrames
from streamcam.labelling.server import MAX_BODY, LabelServer, label_main
from streamcam.training.data import load_data

GOOD = {"ranges": [{"start": 0, "end": 10, "class": "empty", "step": 2}, {"start": 20, "end": 30, "class": "person"}],
        "validation": [{"frame": 25, "boxes": [[10, 20, 60, 100]]}]}


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[LabelServer, Any]]:
    frames = IndexedFrames(write_video(tmp_path / "clip.avi"))
    server = LabelServer(frames, tmp_path / "out", port=0).start()
    try:
        yield server, tmp_path / "out"
    finally:
        server.stop()
        frames.close()


def request(server: LabelServer, method: str, path: str, body: bytes | None = None,
            ctype: str = "application/json", headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        hdrs = {"Content-Type": ctype, **(headers or {})} if body is not None else dict(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        kind = r.getheader("Content-Type") or ""
        return r.status, json.loads(data) if kind == "application/json" else data, kind
    finally:
        conn.close()


def post(server: LabelServer, doc: Any) -> tuple[int, Any]:
    text = doc if isinstance(doc, str) else json.dumps(doc)  # a str: raw JSON text (1e999 parses to inf)
    status, body, _ = request(server, "POST", "/api/save", text.encode())
    return status, body


def test_session_page_and_frames(served):
    server, _ = served
    status, s, _ = request(server, "GET", "/api/session")
    assert status == 200 and (s["frames"], s["width"], s["height"]) == (N, W, H)
    assert s["classes"] == ["person", "empty"] and s["labels"] == {"ranges": [], "validation": []}
    status, page, kind = request(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b"streamcam label" in page
    assert b"http://" not in page and b"https://" not in page  # nothing fetched from elsewhere: works offline
    status, jpg, kind = request(server, "GET", "/frame/7.jpg")
    img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and kind == "image/jpeg" and img.shape == (H, W, 3)
    status, err, _ = request(server, "GET", f"/frame/{N}.jpg")
    assert status == 404 and err["field"] == "frame"
    assert request(server, "GET", "/nope")[0] == 404
    assert server.url.startswith("http://127.0.0.1:")


def test_save_writes_the_outputs_and_a_restart_reloads_them(served, tmp_path):
    server, out = served
    saved: list[dict] = []
    server.on_save = saved.append
    status, summary = post(server, GOOD)
    assert status == 200, summary
    assert summary["train"] == {"person": 9, "empty": 5} and summary["val_boxes"] == 1 and len(saved) == 1
    assert summary["next"][0].startswith("streamcam train ") and "VAL.json" in summary["next"][1]
    assert load_data(out / "train").counts() == {"empty": 5, "person": 9}
    assert request(server, "GET", "/api/session")[1]["labels"]["ranges"][1]["class"] == "person"
    # a second server on the same OUT_DIR starts with those labels
    with IndexedFrames(tmp_path / "clip.avi") as frames, LabelServer(frames, out, port=0) as again:
        labels = request(again, "GET", "/api/session")[1]["labels"]
    assert labels == {"ranges": [{"start": 0, "end": 10, "class": "empty", "step": 2},
                                 {"start": 20, "end": 30, "class": "person", "step": 1}],
                      "validation": [{"frame": 25, "boxes": [[10.0, 20.0, 60.0, 100.0]]}]}


BAD_POSTS = [
    ({"ranges": [{"start": 0, "end": N + 1, "class": "person"}], "validation": []}, "ranges[0].end"),
    ({"ranges": [{"start": 0, "end": 5, "class": "cat"}], "validation": []}, "ranges[0].class"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[50, 10, 20, 30]]}]}, "validation[0].boxes[0]"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[0, 0, W + 5, 30]]}]}, "validation[0].boxes[0]"),
    ('{"ranges": [], "validation": [{"frame": 3, "boxes": [[0, 0, 1e999, 30]]}]}', "validation[0].boxes[0][2]"),
    ({"ranges": [], "validation": [{"frame": -2, "boxes": []}]}, "validation[0].frame"),
    ({"ranges": "all"}, "labels.validation"),
    ({"validation": []}, "labels.ranges"),
]


@pytest.mark.parametrize("doc, field", BAD_POSTS, ids=[f for _, f in BAD_POSTS])
def test_bad_posts_answer_400_naming_the_field(served, doc, field):
    server, out = served
    status, body = post(server, doc)
    assert status == 400 and body["field"] == field and body["error"].startswith(field), body
    assert not (out / "train").exists()  # nothing written
    assert request(server, "GET", "/healthz")[1]["ok"] is True


def test_malformed_requests_never_kill_the_server(served):
    server, out = served
    status, body, _ = request(server, "POST", "/api/save", b"{not json")
    assert status == 400 and body["field"] == "body" and "not valid JSON" in body["error"]
    assert request(server, "POST", "/api/save", b'{"ranges": [], "validation": [NaN]}')[1]["field"] == "body"
    assert request(server, "POST", "/api/save", b"\xff\xfe")[1]["field"] == "body"
    assert request(server, "POST", "/api/save", b"[" * 100_000 + b"]" * 100_000)[1]["field"] == "body"
    status, body, _ = request(server, "POST", "/api/save", b"ranges=1", ctype="application/x-www-form-urlencoded")
    assert status == 415 and body["field"] == "Content-Type"  # a cross-site form cannot save
    status, body, _ = request(server, "POST", "/api/save", b"{}", headers={"Content-Length": str(MAX_BODY + 1)})
    assert status == 413 and body["field"] == "Content-Length"
    assert request(server, "POST", "/api/other", b"{}")[0] == 404
    # a client that promises a body and sends half of it, then goes away
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.putrequest("POST", "/api/save")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "100")
    conn.endheaders()
    conn.send(b'{"ranges": [')
    conn.close()
    # concurrent good saves are serialised; the server still answers
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post(server, GOOD)[0])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200, 200, 200]
    assert load_data(out / "train").counts() == {"empty": 5, "person": 9}
    assert request(server, "GET", "/healthz")[1]["ok"] is True


def test_label_main_prints_the_url_and_stops(tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", n=8)
    stop = threading.Event()
    t = threading.Thread(target=label_main, args=(str(video), str(tmp_path / "out")),
                         kwargs={"port": 0, "stop_event": stop}, daemon=True)
    t.start()
    printed = ""

    def url() -> str | None:  # port 0: the one the OS picked is in the URL it prints
        nonlocal printed
        printed += capsys.readouterr().out
        found = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", printed)
        return found and found.group(1)

    try:
        with urllib.request.urlopen(wait_for("label_main to print its URL", url, timeout=10) + "healthz",
                                    timeout=5) as r:
            assert json.loads(r.read())["frames"] == 8
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()
    printed += capsys.readouterr().out
    assert re.search(r"open http://127\.0\.0\.1:\d+/ in a browser", printed) and "8 frames of 160x120" in printed


def test_cli_errors_name_the_problem(tmp_path, capsys, monkeypatch):
    from streamcam import cli
    from streamcam.cli import main

    monkeypatch.setattr(cli, "_stage_setup", lambda args, name: threading.Event())  # no signal handlers in pytest

    assert main(["label", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out")]) == 2
    assert "missing.mp4: does not exist" in capsys.readouterr().err
    video = write_video(tmp_path / "clip.avi", n=4)
    assert main(["label", str(video), "--out", str(tmp_path / "out"), "--classes", "person"]) == 2
    assert "classes: expected at least two" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["label", str(video), "--out", str(tmp_path / "busy")]) == 2
    assert "is not empty" in capsys.readouterr().err
