"""The real-footage peers (tools/peers): OpenCV 4 detectors in a process of their own, and their operating point."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import conftest
from streamcam.evaluation.localization import match_boxes
from streamcam.evaluation.mot import MotFrame, MotSequence, read_sequence, real_data_dir
from tools.peers import PeerBoxes, PeerError, hog_peer, missing, yolo_peer
from tools.peers.method import PeerMethod, choose_thresholds
from tools.peers.worker import yolo_cfg

ROOT = conftest.ROOT
TUD = real_data_dir(ROOT) / "TUD-Campus"


def _peer(name):
    why = missing(name)
    if why:
        pytest.skip(f"peer {name}: {why}")
    return {"hog": hog_peer, "yolov3-tiny": yolo_peer}[name]()


@pytest.mark.parametrize("name, found", [("hog", 1), ("yolov3-tiny", 3)])
def test_peer_process_answers_boxes_and_reports_bad_frames(tmp_path, name, found):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    with _peer(name) as peer:
        assert peer.opencv.startswith("4.")
        pb = peer.detect(blank)
        assert pb.boxes.shape[1] == 4 and len(pb.scores) == len(pb.boxes) and pb.ms > 0
        with pytest.raises(PeerError, match="not a readable image"):
            peer.detect(tmp_path / "missing.jpg")
        assert peer.detect(blank).boxes.shape[1] == 4  # the worker goes on after a bad request
        if TUD.is_dir():
            f = read_sequence(TUD).frames[0]
            pb = peer.detect(f.path)
            hits = match_boxes([tuple(b) for b in pb.boxes], [b for _, b in f.gt])
            assert len(hits) >= found, (pb, f.gt)  # TUD-Campus frame 1: 6 people, large and upright
    assert peer._proc.poll() == 0  # closed: the worker exited at the end of its input


def test_a_missing_environment_is_named_with_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMCAM_PEERS_PYTHON", str(tmp_path / "nope" / "python"))
    assert "make setup-peers" in missing("hog")
    with pytest.raises(PeerError, match="make setup-peers"):
        hog_peer()


def test_yolo_cfg_gets_the_anchor_mask_the_weights_were_trained_with():
    cfg = "[yolo]\nmask = 3,4,5\nanchors = 1\n[route]\n[yolo]\nmask = 0,1,2\nanchors = 1\n"
    fixed = yolo_cfg(cfg)
    assert fixed.count("mask = 3,4,5") == 1 and "mask = 1,2,3" in fixed and "0,1,2" not in fixed
    assert yolo_cfg(fixed) == fixed


def test_thresholds_are_chosen_by_mota_and_the_stabilizer_tracks_the_peer():
    g = (10.0, 10.0, 30.0, 60.0)
    frames = tuple(MotFrame(i, Path(f"{i}.jpg"), ((1, g),)) for i in range(1, 11))
    seq = MotSequence("s", Path("."), 10.0, 100, 100, frames)
    # Every frame: the person (score 0.9) and a false box elsewhere (score 0.3).
    boxes = {f.path: PeerBoxes(np.array([g, (60.0, 10.0, 80.0, 60.0)]), np.array([0.9, 0.3]), 5.0) for f in frames}
    ch = choose_thresholds("p", boxes, seq, (0.2, 0.5, 0.95))
    assert (ch["raw"], ch["stabilized"]) == (0.5, 0.5)
    m = PeerMethod("p", boxes, ch["raw"], ch["stabilized"])
    from streamcam.evaluation.real import evaluate_sequence

    r = evaluate_sequence(seq, m)
    assert r["raw"]["mota"] == pytest.approx(1.0) and r["raw"]["false_positives"] == 0
    # The stabilizer publishes after hits_to_confirm (3) frames: 8 of 10 found, one id.
    assert r["stabilized"]["misses"] == 2 and r["stabilized"]["id_switches"] == 0
    assert m.config.box_correction.is_identity


def test_haar_face_peer_finds_the_astronauts_face(tmp_path):
    """The face-mode peer of tools/bench_faces.py: OpenCV 4's cascade in the peers' environment."""
    from tools.bench_faces import astronaut_frame, astronaut_ok
    from tools.peers import haar_face_peer

    why = missing("haar-face")
    if why:
        pytest.skip(f"peer haar-face: {why}")
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut_frame())
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    with haar_face_peer() as peer:
        assert peer.opencv.startswith("4.")
        assert astronaut_ok(peer.detect(path).boxes)
        assert len(peer.detect(blank).boxes) == 0
