"""Sources: real video files, reconnects, thermal sequences, image folders, pacing, open_source."""

from __future__ import annotations

import http.server
import os
import socketserver
import threading
import time

import cv2
import numpy as np
import pytest

from streamcam.capture.sources import (
    ImageFolderSource,
    OpenCVSource,
    Pacer,
    ReconnectingSource,
    SourceFrame,
    ThermalSequenceSource,
    open_source,
)
from streamcam.config import SourceConfig
from streamcam.errors import SourceError

W, H, N = 64, 48, 8


def _pattern(i: int) -> np.ndarray:
    """Frame i: a flat level 20 + 25 i with a white square whose position encodes i."""
    img = np.full((H, W, 3), 20 + 25 * i, np.uint8)
    x = 4 + 6 * i
    img[8:20, x : x + 8] = 255
    return img


def write_video(path, n: int = N, fps: float = 10.0, fourcc: str = "MJPG") -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened(), f"cannot write {fourcc} to {path}"
    for i in range(n):
        writer.write(_pattern(i))
    writer.release()
    return str(path)


@pytest.fixture
def video(tmp_path) -> str:
    return write_video(tmp_path / "clip.avi")


def _level(frame: SourceFrame) -> float:
    return float(np.median(frame.image[30:, :, :]))


# --- OpenCVSource on a real file ------------------------------------------------------


@pytest.mark.parametrize("name,fourcc", [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_file_reads_every_frame_then_ends(tmp_path, name, fourcc):
    path = write_video(tmp_path / name, fourcc=fourcc)
    src = OpenCVSource(path, loop=False)
    assert src.fps == pytest.approx(10.0)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert len(frames) == N
    for i, f in enumerate(frames):
        assert f.pixel_format == "BGR8" and f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert f.image.flags.c_contiguous and f.raw is None and f.index == i
        assert abs(_level(f) - (20 + 25 * i)) <= 6, f"frame {i} decoded out of order"
    assert [f.t_capture_ns for f in frames] == sorted(f.t_capture_ns for f in frames)
    assert src.read() is None  # stays at the end
    src.close()
    with pytest.raises(SourceError, match="after close"):
        src.read()


def test_file_loop_continues_past_the_end(video):
    src = OpenCVSource(video, loop=True)
    frames = [src.read() for _ in range(2 * N + 3)]
    src.close()
    assert [f.index for f in frames] == list(range(2 * N + 3))
    levels = [_level(f) for f in frames]
    for i in range(N + 3):
        assert abs(levels[i] - levels[i + N]) <= 2, f"frame {i + N} should repeat frame {i}"


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        OpenCVSource(str(tmp_path / "nope.avi"))


def test_file_that_is_not_a_video(tmp_path):
    p = tmp_path / "junk.avi"
    p.write_bytes(b"this is not a video" * 50)
    with pytest.raises(SourceError, match="cannot open|no readable frames"):
        src = OpenCVSource(str(p), loop=True)
        src.read()


# --- reconnecting -----------------------------------------------------------------------


def test_reconnect_when_file_disappears_and_reappears(video, tmp_path):
    events = []
    src = ReconnectingSource(lambda: OpenCVSource(video, loop=True), initial_s=0.05, max_s=0.1, on_event=events.append)
    for _ in range(3):
        assert src.read() is not None
    hidden = str(tmp_path / "hidden.avi")
    os.rename(video, hidden)  # the open capture still reads to the end; the loop's reopen then fails
    back = threading.Timer(0.4, os.rename, args=(hidden, video))
    back.start()
    t0 = time.monotonic()
    try:
        frames = [src.read() for _ in range(N + 4)]
    finally:
        back.join()
    elapsed = time.monotonic() - t0
    assert all(f is not None for f in frames)
    assert src.reconnects == 1
    assert src.failures >= 2  # the drop at the loop, then at least one failed reopen while hidden
    assert elapsed >= 0.3, "frames resumed before the file came back"
    kinds = [e.kind for e in events]
    assert kinds[0] == "opened" and "dropped" in kinds and "open_failed" in kinds and kinds[-1] == "reconnected"
    assert all(e.delay_s <= 0.1 for e in events)
    # indices keep counting across the reconnect; the file restarts at its first frame
    assert [f.index for f in frames] == list(range(3, 3 + N + 4))
    after = frames[N - 3]  # first frame after the reconnect
    assert abs(_level(after) - 20) <= 6
    src.close()
    assert src.read() is None


class _FailingOpen:
    """open_fn that fails ``fails`` times, then gives a source that fails after ``good`` frames."""

    def __init__(self, fails: int, good: int = 1) -> None:
        self.fails, self.good, self.calls = fails, good, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.fails:
            raise SourceError(f"camera unplugged (try {self.calls})")
        return _ListSource(self.good)


class _ListSource:
    fps = 25.0

    def __init__(self, good: int) -> None:
        self.left = good
        self.closed = False

    def read(self):
        if self.left == 0:
            raise SourceError("stream dropped")
        self.left -= 1
        return SourceFrame(np.zeros((4, 4), np.uint8), "GRAY8", time.time_ns())

    def close(self):
        self.closed = True


def test_backoff_doubles_caps_and_resets_after_a_good_frame():
    delays: list[float] = []
    opener = _FailingOpen(fails=4, good=1)
    src = ReconnectingSource(opener, initial_s=0.5, max_s=2.0, sleep=delays.append)
    assert src.read() is not None
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert src.reconnects == 1 and src.fps == 25.0
    opener.fails = opener.calls + 1  # next: the read drops, one reopen fails, then it comes back
    assert src.read() is not None
    assert delays[4:] == [0.5, 1.0]  # reset to initial after the good frame
    assert src.reconnects == 2 and src.failures == 6


def test_close_interrupts_a_backoff_wait():
    def never():
        raise SourceError("no such camera")

    backoff = threading.Event()  # set as the reader starts waiting out its backoff
    src = ReconnectingSource(never, initial_s=30.0, max_s=60.0,
                             on_event=lambda e: backoff.set() if e.delay_s == 30.0 else None)
    result = []
    reader = threading.Thread(target=lambda: result.append(src.read()))
    reader.start()
    assert backoff.wait(5)
    assert reader.is_alive()  # waiting out the 30 s backoff
    t0 = time.monotonic()
    src.close()
    reader.join(timeout=2.0)
    assert not reader.is_alive()
    assert time.monotonic() - t0 < 0.5
    assert result == [None]


def test_close_from_another_thread_closes_the_inner_source():
    inner = _ListSource(good=1000)
    src = ReconnectingSource(lambda: inner, initial_s=0.1, max_s=0.1)
    assert src.read() is not None
    src.close()
    assert inner.closed and src.read() is None


# --- frame validation (a capture device that returns bad frames) ------------------------


class _FakeCapture:
    """Stands in for cv2.VideoCapture: a live device returning the given frames, then nothing."""

    frames: list = []

    def __init__(self, *args, **kwargs) -> None:
        self._frames = list(type(self).frames)
        self.props: dict = {}

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 8.0, cv2.CAP_PROP_FRAME_HEIGHT: 6.0}.get(prop, 0.0)

    def read(self):
        if not self._frames:
            return False, None
        return True, self._frames.pop(0)

    def release(self):
        pass


@pytest.fixture
def fake_camera(monkeypatch):
    def use(*frames):
        cls = type("Cap", (_FakeCapture,), {"frames": list(frames)})
        monkeypatch.setattr(cv2, "VideoCapture", cls)
        return OpenCVSource(0, width=8, height=6)

    return use


@pytest.mark.parametrize(
    "frame,message",
    [
        (np.zeros((0, 0, 3), np.uint8), "zero-size"),
        (np.zeros((6, 0), np.uint8), "zero-size"),
        (np.zeros((6, 8, 2), np.uint8), "2 channels"),
        (np.zeros((6, 8, 5), np.uint8), "5 channels"),
        (np.zeros((6, 8, 3), np.float32), "dtype.*float32"),
        (np.zeros((6, 8, 3), np.int16), "dtype.*int16"),
        (np.zeros((2, 6, 8, 3), np.uint8), "2-D or 3-D"),
        (np.zeros((6, 8, 3), np.uint16), "16-bit frames to have 1 channel"),
    ],
)
def test_bad_frame_is_a_source_error_naming_the_problem(fake_camera, frame, message):
    src = fake_camera(frame)
    with pytest.raises(SourceError, match=message):
        src.read()


def test_four_channel_frames_become_bgr(fake_camera):
    bgra = np.zeros((6, 8, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    f = fake_camera(bgra).read()
    assert f.pixel_format == "BGR8" and f.image.shape == (6, 8, 3)
    assert f.image[0, 0].tolist() == [10, 20, 30]


def test_gray_frames_stay_gray(fake_camera):
    f = fake_camera(np.full((6, 8, 1), 7, np.uint8)).read()
    assert f.pixel_format == "GRAY8" and f.image.shape == (6, 8) and int(f.image[0, 0]) == 7


def test_y16_frames_keep_raw_and_get_agc(fake_camera):
    raw = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 100 + 3000).astype(np.uint16)
    src = fake_camera(raw, np.frombuffer(raw.astype('<u2').tobytes(), np.uint8).reshape(1, -1))  # second: the CONVERT_RGB=0 byte buffer some backends return
    src.y16 = True
    f = src.read()
    assert f.pixel_format == "GRAY8" and f.image.dtype == np.uint8
    np.testing.assert_array_equal(f.raw, raw)
    assert f.image[0, 0] < f.image[-1, -1]  # hotter = brighter
    g = src.read()
    np.testing.assert_array_equal(g.raw, raw)


def test_y16_request_sets_the_capture_properties(fake_camera):
    src = fake_camera()
    src.y16 = True
    cap = src._open()
    assert cap.props[cv2.CAP_PROP_CONVERT_RGB] == 0
    assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"Y16 ")
    assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 8


def test_live_source_without_a_frame_drops_and_reconnects(fake_camera):
    src = fake_camera(np.zeros((6, 8, 3), np.uint8))
    assert src.read() is not None
    with pytest.raises(SourceError, match="no frame"):
        src.read()  # a live source does not "end"; it dropped

    cls = type("Cap", (_FakeCapture,), {"frames": [np.zeros((6, 8, 3), np.uint8)]})
    cv2.VideoCapture = cls  # restored by monkeypatch (fake_camera)
    rc = ReconnectingSource(lambda: OpenCVSource(0), initial_s=0.01, max_s=0.02)
    frames = [rc.read() for _ in range(3)]
    assert all(f is not None for f in frames) and rc.reconnects == 2


def test_source_frame_validates_on_construction():
    img = np.zeros((4, 5), np.uint8)
    with pytest.raises(SourceError, match="expected \\[H, W, 3\\] for BGR8"):
        SourceFrame(img, "BGR8", 0)
    with pytest.raises(SourceError, match="pixel_format"):
        SourceFrame(img, "RGB8", 0)
    with pytest.raises(SourceError, match="uint8"):
        SourceFrame(img.astype(np.float32), "GRAY8", 0)
    with pytest.raises(SourceError, match="C-contiguous"):
        SourceFrame(np.zeros((4, 10), np.uint8)[:, ::2], "GRAY8", 0)
    with pytest.raises(SourceError, match="raw: expected shape \\[4, 5\\]"):
        SourceFrame(img, "GRAY8", 0, raw=np.zeros((4, 4), np.uint16))
    with pytest.raises(SourceError, match="raw: expected uint16"):
        SourceFrame(img, "GRAY8", 0, raw=np.zeros((4, 5), np.int32))
    assert SourceFrame(img, "GRAY8", 1).shape == (4, 5)


# --- thermal sequences --------------------------------------------------------------------


def _thermal(t: int, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(t)
    frame = rng.integers(7000, 7400, size=(h, w)).astype(np.uint16)
    frame[5:12, 4 + t : 10 + t] = 9000  # a warm object moving right
    return frame


def test_thermal_npy_stack_gives_gray8_and_the_exact_raw(tmp_path):
    stack = np.stack([_thermal(t) for t in range(5)])
    np.save(tmp_path / "seq.npy", stack)
    src = ThermalSequenceSource(str(tmp_path), fps=9.0, loop=False)
    assert src.fps == 9.0
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert len(frames) == 5
    for t, f in enumerate(frames):
        assert f.pixel_format == "GRAY8" and f.image.shape == (24, 32) and f.image.dtype == np.uint8
        assert f.raw.dtype == np.uint16 and f.raw.flags.c_contiguous
        np.testing.assert_array_equal(f.raw, stack[t])
        assert f.image[8, 6 + t] == 255 and f.image[20, 30] < 200  # the warm object saturates
        assert f.index == t


def test_thermal_tiff_sequence_and_npy_files_in_natural_order(tmp_path):
    raws = [_thermal(t) for t in range(4)]
    names = ["f2.tiff", "f10.tiff", "f1.tif", "f3.npy"]  # natural order: f1, f2, f3, f10
    order = {"f1.tif": 0, "f2.tiff": 1, "f3.npy": 2, "f10.tiff": 3}
    for name in names:
        path = str(tmp_path / name)
        if name.endswith(".npy"):
            np.save(path, raws[order[name]])
        else:
            assert cv2.imwrite(path, raws[order[name]])
    (tmp_path / "notes.txt").write_text("ignored")
    src = ThermalSequenceSource(str(tmp_path / "f*"), fps=30.0, loop=True)
    got = [src.read() for _ in range(6)]
    for i, f in enumerate(got):
        np.testing.assert_array_equal(f.raw, raws[i % 4])  # 16-bit TIFFs round-trip exactly
        assert f.pixel_format == "GRAY8"
    src.close()


@pytest.mark.parametrize(
    "data,message",
    [
        (np.array([[1.0, np.nan], [3.0, 4.0]], np.float32), "NaN"),
        (np.array([[1.0, np.inf], [3.0, 4.0]], np.float64), "NaN/inf"),
        (np.array([[1.5, 2.0], [3.0, 4.0]], np.float32), "non-integer"),
        (np.array([[-1, 2], [3, 4]], np.int32), "out of the uint16 range"),
        (np.array([[True, False]]), "integer counts"),
        (np.zeros((2, 3, 4, 5), np.uint16), "expected \\[H, W\\] or \\[T, H, W\\]"),
    ],
)
def test_thermal_bad_data_is_a_source_error(tmp_path, data, message):
    np.save(tmp_path / "bad.npy", data)
    src = ThermalSequenceSource(str(tmp_path / "bad.npy"), loop=False)
    with pytest.raises(SourceError, match=message):
        src.read()


def test_thermal_integer_valued_floats_are_accepted(tmp_path):
    data = np.array([[7000.0, 7100.0], [7200.0, 9000.0]], np.float32)
    np.save(tmp_path / "ok.npy", data)
    f = ThermalSequenceSource(str(tmp_path), loop=False).read()
    np.testing.assert_array_equal(f.raw, data.astype(np.uint16))


def test_thermal_empty_match_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no .npy/.tif/.tiff files"):
        ThermalSequenceSource(str(tmp_path))


# --- image folders --------------------------------------------------------------------------


def test_image_folder_in_natural_order_keeps_gray_and_colour(tmp_path):
    cv2.imwrite(str(tmp_path / "img10.png"), np.full((H, W, 3), (0, 0, 200), np.uint8))
    cv2.imwrite(str(tmp_path / "img2.png"), np.full((H, W), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "img1.png"), np.full((H, W, 4), (200, 0, 0, 255), np.uint8))
    src = ImageFolderSource(str(tmp_path), fps=5.0, loop=False)
    a, b, c = src.read(), src.read(), src.read()
    assert src.read() is None
    assert a.pixel_format == "BGR8" and a.image[0, 0].tolist() == [200, 0, 0]  # BGRA -> BGR
    assert b.pixel_format == "GRAY8" and int(b.image[0, 0]) == 90
    assert c.pixel_format == "BGR8" and c.image[0, 0].tolist() == [0, 0, 200]
    assert src.fps == 5.0


def test_image_folder_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot read .*broken.png"):
        ImageFolderSource(str(tmp_path)).read()


# --- pacing -----------------------------------------------------------------------------------


def test_pacer_keeps_the_rate():
    pacer = Pacer(50.0)
    t0 = time.monotonic()
    for _ in range(21):  # the first wait starts the schedule: 20 periods follow
        pacer.wait()
    elapsed = time.monotonic() - t0
    assert 0.38 <= elapsed <= 0.6, f"20 frames at 50 fps took {elapsed:.3f}s"


def test_pacer_skips_slots_after_a_stall_instead_of_bursting():
    pacer = Pacer(50.0)
    pacer.wait()
    pacer.wait()
    time.sleep(0.13)  # ~6.5 slots late
    t0 = time.monotonic()
    pacer.wait()  # late: at once
    assert time.monotonic() - t0 < 0.01
    assert pacer.skipped >= 5
    t1 = time.monotonic()
    for _ in range(3):
        pacer.wait()
    assert time.monotonic() - t1 >= 0.045, "frames after a stall must not come in a burst"


def test_pacer_schedule_is_absolute_with_a_fake_clock():
    now = [100.0]
    slept: list[float] = []

    def sleep(d):
        slept.append(round(d, 6))
        now[0] += d

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait()  # t0 = 100.0
    now[0] += 0.03  # work took 30 ms
    pacer.wait()
    assert slept == [0.07] and now[0] == pytest.approx(100.1)
    now[0] += 0.25  # a stall until 100.35: this late frame takes slot 100.2, slot 100.3 is skipped
    pacer.wait()
    assert pacer.skipped == 1 and len(slept) == 1
    pacer.wait()
    assert now[0] == pytest.approx(100.4)  # back on the original grid, no drift
    stop = threading.Event()
    stop.set()
    assert pacer.wait(stop) is False


# --- open_source from config ------------------------------------------------------------------


def test_open_source_synthetic():
    src = open_source(SourceConfig(kind="synthetic", width=96, height=64, seed=3, people=2, confusers=1, fps=12.0, send_raw=True))
    f0, f1 = src.read(), src.read()
    assert src.fps == 12.0
    assert f0.pixel_format == "GRAY8" and f0.image.shape == (64, 96) and f0.raw.shape == (64, 96)
    assert f0.truth is not None and all(hasattr(o, "box") and hasattr(o, "label") for o in f0.truth)
    assert (f0.index, f1.index) == (0, 1)
    again = open_source(SourceConfig(kind="synthetic", width=96, height=64, seed=3, people=2, confusers=1))
    np.testing.assert_array_equal(again.read().image, f0.image)  # deterministic per seed
    no_raw = open_source(SourceConfig(kind="synthetic", width=96, height=64, send_raw=False))
    assert no_raw.read().raw is None
    src.close()


def test_open_source_file_thermal_images(tmp_path, video):
    f = open_source(SourceConfig(kind="file", uri=os.path.basename(video), loop=False), base_dir=os.path.dirname(video))
    assert isinstance(f, ReconnectingSource) and f.fps == pytest.approx(10.0)
    assert sum(1 for _ in iter(f.read, None)) == N
    f.close()

    np.save(tmp_path / "t.npy", np.stack([_thermal(t) for t in range(2)]))
    t = open_source(SourceConfig(kind="thermal", uri=str(tmp_path / "*.npy"), fps=8.0, loop=False))
    assert isinstance(t, ThermalSequenceSource) and t.fps == 8.0 and t.read().raw is not None

    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((H, W, 3), np.uint8))
    i = open_source(SourceConfig(kind="images", uri="imgs", loop=True), base_dir=str(tmp_path))
    assert isinstance(i, ImageFolderSource) and i.read() is not None and i.read() is not None


def test_open_source_camera_and_url_are_reconnecting(monkeypatch):
    cls = type("Cap", (_FakeCapture,), {"frames": [np.zeros((6, 8, 3), np.uint8)]})
    monkeypatch.setattr(cv2, "VideoCapture", cls)
    cam = open_source(SourceConfig(kind="camera", uri="0", width=320, height=240, reconnect_initial_s=0.01, reconnect_max_s=0.02))
    assert isinstance(cam, ReconnectingSource)
    f = cam.read()
    assert f.image.shape == (6, 8, 3) and cam.fps == 30.0
    cam.close()
    url = open_source(SourceConfig(kind="url", uri="rtsp://127.0.0.1:1/none"))
    assert isinstance(url, ReconnectingSource) and url.reconnects == 0
    url.close()
    assert url.read() is None


# --- HTTP MJPEG through FFmpeg ------------------------------------------------------------------


def _ffmpeg_available() -> bool:
    info = cv2.getBuildInformation()
    i = info.find("FFMPEG:")
    return i >= 0 and info[i : i + 40].split(":", 1)[1].strip().startswith("YES")


class _MJPEGHandler(http.server.BaseHTTPRequestHandler):
    jpegs: list[bytes] = []

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(200):
                jpg = self.jpegs[i % len(self.jpegs)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg))
                self.wfile.write(jpg + b"\r\n")
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.mark.skipif(not _ffmpeg_available(), reason="cv2 built without the FFmpeg backend: it cannot read HTTP MJPEG")
def test_http_mjpeg_stream():
    _MJPEGHandler.jpegs = [cv2.imencode(".jpg", _pattern(i))[1].tobytes() for i in range(N)]
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _MJPEGHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        src = OpenCVSource(f"http://127.0.0.1:{port}/x.mjpg", open_timeout_s=3, read_timeout_s=3)
        assert src.is_live
        frames = [src.read() for _ in range(10)]
        src.close()
    finally:
        server.shutdown()
        server.server_close()
    assert all(f.image.shape == (H, W, 3) and f.pixel_format == "BGR8" for f in frames)
    levels = [_level(f) for f in frames]
    assert any(abs(levels[0] - (20 + 25 * k)) <= 6 for k in range(N))
    assert len({round(x / 10) for x in levels}) > 3, "frames should change as the stream plays"
