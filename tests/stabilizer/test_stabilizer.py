import shutil

import numpy as np
import pytest

import conftest
from streamcam.protocol import Detection
from streamcam.stabilizer import Stabilizer, StabilizerConfig

DT = 1 / 30


def det(cx, cy, w=30.0, h=80.0, score=0.9):
    return Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), score, "person")


def centre(d):
    return ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2)


def run(frames, config=None):
    st = Stabilizer(config or StabilizerConfig())
    return st, [st.update(dets, i * DT) for i, dets in enumerate(frames)]


def test_steady_object_keeps_one_id_and_is_confirmed_after_n_hits():
    cfg = StabilizerConfig(hits_to_confirm=3)
    st, outs = run([[det(100 + i, 200)] for i in range(40)], cfg)
    assert outs[0] == [] and outs[1] == [] and len(outs[2]) == 1
    assert {d.track_id for o in outs[2:] for d in o} == {1}
    assert all(len(o) == 1 for o in outs[2:])
    (t,) = st.tracks
    assert t.state == "confirmed" and t.hits == 40 and t.age == 40 and len(t.trail) == 20
    assert t.velocity[0] == pytest.approx(30, abs=3)  # 1 px/frame


def test_one_frame_miss_coasts_with_the_same_id():
    frames = [[det(100 + 2 * i, 200)] for i in range(30)]
    frames[15] = []
    st, outs = run(frames)
    assert len(outs[15]) == 1 and outs[15][0].track_id == 1
    assert centre(outs[15][0])[0] == pytest.approx(130, abs=3)  # the predicted position
    assert outs[15][0].score < outs[14][0].score  # coasting lowers the score
    assert {d.track_id for o in outs[3:] for d in o} == {1}


def test_coasting_track_is_deleted_after_m_misses():
    cfg = StabilizerConfig(max_misses=4, coast_publish=4)
    frames = [[det(100, 200)] for _ in range(10)] + [[] for _ in range(8)]
    st, outs = run(frames, cfg)
    assert [len(o) for o in outs[10:]] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert st.tracks == []


def test_coasting_is_published_for_coast_publish_frames_and_the_id_survives_to_max_misses():
    cfg = StabilizerConfig(max_misses=4, coast_publish=1)
    frames = [[det(100, 200)] for _ in range(10)] + [[] for _ in range(3)] + [[det(100, 200)] for _ in range(3)]
    st, outs = run(frames, cfg)
    # Published on the first missed frame only; alive (unpublished) for misses 2 and 3; then matched again.
    assert [len(o) for o in outs[10:]] == [1, 0, 0, 1, 1, 1]
    assert [t.state for t in st.tracks] == ["confirmed"]
    assert {d.track_id for o in outs for d in o} == {1}
    # With 5 missed frames (> max_misses) the track is gone and the object comes back under a new id.
    frames = [[det(100, 200)] for _ in range(10)] + [[] for _ in range(5)] + [[det(100, 200)] for _ in range(4)]
    st, outs = run(frames, cfg)
    assert outs[14] == [] and st.tracks[0].id == 2 and outs[-1][0].track_id == 2


def test_crossing_objects_keep_their_ids():
    frames = []
    for i in range(60):
        a = det(100 + 4 * i, 200 + 0.5 * i)  # left to right
        b = det(340 - 4 * i, 210 - 0.5 * i)  # right to left, crossing at i = 30
        frames.append([a, b] if i % 2 else [b, a])
    st, outs = run(frames)
    for o in outs[5:]:
        assert len(o) == 2
        by_id = {d.track_id: centre(d)[0] for d in o}
        assert set(by_id) == {1, 2}
    # After the crossing, the track of the object that started on the left is on the right.
    left = min(outs[5], key=lambda d: centre(d)[0]).track_id
    end = {d.track_id: centre(d)[0] for d in outs[-1]}
    assert end[left] > 300 and end[3 - left] < 140


def test_spurious_one_frame_detection_is_never_confirmed():
    rng = np.random.default_rng(0)
    frames = [[det(100, 200)] for _ in range(50)]
    for i in range(5, 50, 3):  # a false positive somewhere else every third frame
        frames[i] = frames[i] + [det(*rng.uniform([300, 100], [600, 400]))]
    st, outs = run(frames)
    assert {d.track_id for o in outs for d in o} == {1}
    assert all(len(o) == 1 for o in outs[2:])


def test_hysteresis_keeps_a_confirmed_track_between_leave_and_enter():
    cfg = StabilizerConfig(score_enter=0.6, score_leave=0.3)
    scores = [0.9] * 10 + [0.4] * 20 + [0.2] * 20
    st, outs = run([[det(100, 200, score=s)] for s in scores], cfg)
    assert all(len(o) == 1 and o[0].track_id == 1 for o in outs[3:30])  # sustained by 0.4
    assert all(o[0].score >= 0.35 for o in outs[25:30])
    assert outs[-1] == []  # below score_leave it coasts, then goes
    # A weak object never starts a track.
    st, outs = run([[det(100, 200, score=0.4)] for _ in range(30)], cfg)
    assert all(o == [] for o in outs) and st.tracks == []


def test_published_boxes_jitter_less_than_the_input():
    rng = np.random.default_rng(3)
    truth = [np.array([100 + 1.5 * i, 200 + 0.5 * i, 30, 80]) for i in range(150)]
    noisy = [t + np.r_[rng.normal(0, 4, 2), rng.normal(0, 4, 2)] for t in truth]
    st, outs = run([[det(*z)] for z in noisy])
    assert all(len(o) == 1 for o in outs[3:])
    off_in = np.array([z[:2] - t[:2] for z, t in zip(noisy[20:], truth[20:])])
    off_out = np.array([np.array(centre(o[0])) - t[:2] for o, t in zip(outs[20:], truth[20:])])
    jit_in = np.linalg.norm(np.diff(off_in, axis=0), axis=1).mean()
    jit_out = np.linalg.norm(np.diff(off_out, axis=0), axis=1).mean()
    assert jit_out < jit_in / 3
    w_in = np.abs(np.diff([z[2] for z in noisy[20:]])).mean()
    w_out = np.abs(np.diff([o[0].box[2] - o[0].box[0] for o in outs[20:]])).mean()
    assert w_out < w_in / 3
    assert np.abs(off_out).mean() < 4  # smooth, not lagging behind


def test_accepts_peaks_and_pairs_and_labels_are_kept_apart():
    from streamcam.stabilizer import Peak

    st = Stabilizer(StabilizerConfig(hits_to_confirm=1))
    out = st.update([Peak(100, 200, 0.9, (85, 160, 115, 240)), ((300, 100, 330, 180), 0.8)], 0.0)
    assert sorted(d.track_id for d in out) == [1, 2] and {d.label for d in out} == {"person"}
    out = st.update([Detection((85, 160, 115, 240), 0.9, "car")], DT)
    assert 3 in {d.track_id for d in out}  # same place, other label: a new track


def test_time_must_not_go_backwards_and_config_is_validated():
    st = Stabilizer()
    st.update([], 1.0)
    with pytest.raises(ValueError, match="backwards"):
        st.update([], 0.5)
    with pytest.raises(ValueError, match="score_leave"):
        StabilizerConfig(score_enter=0.3, score_leave=0.5)
    with pytest.raises(ValueError, match="hits_to_confirm"):
        StabilizerConfig(hits_to_confirm=0)


def test_coasting_track_leaving_the_frame_is_not_published():
    frames = [[det(600 + 5 * i, 200)] for i in range(8)] + [[] for _ in range(6)]
    st = Stabilizer()
    outs = [st.update(d, i * DT, frame_size=(640, 480)) for i, d in enumerate(frames)]
    assert len(outs[7]) == 1
    assert outs[-1] == []
    assert all(0 <= v <= 640 for o in outs for d in o for v in d.box[::2])


def test_box_correction_rescales_candidates_about_their_centre():
    from streamcam.stabilizer.box_correction import BoxCorrection

    # log w' = log 0.5 + log w (half as wide); log h' = log h + 0 (unchanged).
    bc = BoxCorrection(width=(float(np.log(0.5)), 1.0, 0.0), height=(0.0, 0.0, 1.0))
    out = bc.apply(np.array([[10.0, 20.0, 50.0, 100.0]]))
    np.testing.assert_allclose(out, [[20.0, 20.0, 40.0, 100.0]])
    # Width from the height: w' = 0.4 h (c = 1 on log h), h' = 2 w (a = log 2, b = 1).
    bc = BoxCorrection(width=(float(np.log(0.4)), 0.0, 1.0), height=(float(np.log(2.0)), 1.0, 0.0))
    np.testing.assert_allclose(bc.apply(np.array([[0.0, 0.0, 30.0, 100.0]])), [[-5.0, 20.0, 35.0, 80.0]])
    assert BoxCorrection().is_identity and not bc.is_identity
    with pytest.raises(ValueError, match="width"):
        BoxCorrection(width=(0.0, 1.0))
    # In the stabilizer the published box is the corrected one.
    st, outs = run([[det(100, 200, w=40, h=80)] for _ in range(5)],
                   StabilizerConfig(box_correction=BoxCorrection(width=(float(np.log(0.5)), 1.0, 0.0))))
    b = outs[-1][0].box
    assert b[2] - b[0] == pytest.approx(20, abs=0.01) and b[3] - b[1] == pytest.approx(80, abs=0.01)


def test_the_box_correction_is_the_models_unless_the_config_sets_one():
    from streamcam.config import load_config
    from streamcam.stabilizer.box_correction import BoxCorrection

    model_bc = {"width": [-2.0, 0.5, 0.9], "height": [-0.8, 0.1, 1.1]}
    assert StabilizerConfig().for_model(model_bc).box_correction == BoxCorrection((-2.0, 0.5, 0.9), (-0.8, 0.1, 1.1))
    assert StabilizerConfig().for_model(None).box_correction.is_identity  # a model without one gets none
    own = BoxCorrection(width=(0.1, 1.0, 0.0))
    assert StabilizerConfig(box_correction=own).for_model(model_bc).box_correction == own  # the config wins
    # In YAML: absent = the model's; {} = identity whatever the model says; values = those.
    root = conftest.ROOT
    cfg = load_config(root / "configs" / "default.yaml", {"stabilizer.box_correction": {}})
    assert cfg.stabilizer.for_model(model_bc).box_correction.is_identity
    assert load_config(root / "configs" / "default.yaml").stabilizer.box_correction is None
    # A Stabilizer given an undecided config runs with the identity.
    st, outs = run([[det(100, 200, w=40, h=80)] for _ in range(5)], StabilizerConfig())
    b = outs[-1][0].box
    assert b[2] - b[0] == pytest.approx(40, abs=0.01) and b[3] - b[1] == pytest.approx(80, abs=0.01)


def test_the_live_stabilizer_uses_the_models_box_correction(tmp_path):
    from streamcam.config import load_config
    from streamcam.processor.model_meta import update_metadata
    from streamcam.processor.stage import build_stabilized_detector

    pytest.importorskip("onnx")
    root = conftest.ROOT
    model = tmp_path / "m.onnx"
    shutil.copy(root / "engines" / "person-ir.onnx", model)
    update_metadata(str(model), box_correction={"width": [0.25, 1.0, 0.0], "height": [0.0, 0.0, 1.0]})
    td = build_stabilized_detector(load_config(root / "configs" / "default.yaml", {"processor.model": str(model)}))
    try:
        assert td.config.box_correction.width == (0.25, 1.0, 0.0)
    finally:
        td.detector.engine.close()
    over = {"processor.model": str(model), "stabilizer.box_correction": {"width": [0.5, 1.0, 0.0]}}
    td = build_stabilized_detector(load_config(root / "configs" / "default.yaml", over))
    try:
        assert td.config.box_correction.width == (0.5, 1.0, 0.0)
    finally:
        td.detector.engine.close()


def two_walkers(i):
    """Two people walking towards each other, crossing at frame 30 (centres 100 px apart at frame 20)."""
    return (100 + 5 * i, 200.0), (400 - 5 * i, 200.0)


def test_a_box_holding_two_tracks_hides_them_on_their_predictions():
    frames = []
    for i in range(60):
        (ax, ay), (bx, by) = two_walkers(i)
        if 24 <= i < 36:  # one blob box spanning both people
            x0, x1 = min(ax, bx) - 15, max(ax, bx) + 15
            frames.append([Detection((x0, 160, x1, 240), 0.9, "person")])
        else:
            frames.append([det(ax, ay), det(bx, by)])
    st, outs = run(frames, StabilizerConfig(merge_min_hits=10))
    for i in range(24, 36):  # both stay published, at their predicted (not the blob's) positions
        (ax, _), (bx, _) = two_walkers(i)
        by_id = {d.track_id: (centre(d)[0], d.box[2] - d.box[0]) for d in outs[i]}
        assert set(by_id) == {1, 2}
        assert by_id[1][0] == pytest.approx(ax, abs=3) and by_id[2][0] == pytest.approx(bx, abs=3)
        assert by_id[1][1] == pytest.approx(30, abs=2)  # the blob's width is not taken
    assert {d.track_id for o in outs[5:] for d in o} == {1, 2}  # no track from the blob, ids kept
    assert centre([d for d in outs[-1] if d.track_id == 1][0])[0] > 350
    # Without merge handling the blob feeds one track and the other one coasts away.
    st, outs = run(frames, StabilizerConfig(max_merged=0))
    widths = [d.box[2] - d.box[0] for d in outs[35]]
    assert max(widths) > 45 or len(outs[35]) < 2


def test_a_track_seen_on_its_own_beside_a_blob_keeps_its_box_and_gets_no_twin():
    # Two people walk side by side; for 10 frames the detector also gives a weak box around both
    # (a blob) besides their own boxes, as the CAM box rule does when their heat merges.
    frames = []
    for i in range(40):
        a, b = det(100 + 3 * i, 200), det(160 + 3 * i, 200)
        blob = [Detection((a.box[0] - 5, 150, b.box[2] + 5, 250), 0.3, "person")] if 20 <= i < 30 else []
        frames.append([a, b] + blob)
    st, outs = run(frames, StabilizerConfig(merge_min_hits=10))
    assert all({d.track_id for d in o} == {1, 2} for o in outs[5:])  # no second track on either
    for i in range(20, 30):  # each follows its own box, not its prediction
        by_id = {d.track_id: centre(d)[0] for d in outs[i]}
        assert by_id[1] == pytest.approx(100 + 3 * i, abs=3) and by_id[2] == pytest.approx(160 + 3 * i, abs=3)
    assert [t.hits for t in sorted(st.tracks, key=lambda t: t.id)] == [40, 40]
    # As before (merge_keeps_own off): both ride on their predictions, their own boxes unused (left
    # unmatched, such a box starts a twin track once the prediction has drifted from it).
    st, outs = run(frames, StabilizerConfig(merge_min_hits=10, merge_keeps_own=False))
    assert [t.hits for t in st.tracks if t.id in (1, 2)] == [30, 30]


def test_young_tracks_are_not_hidden_and_hiding_is_bounded():
    # Tracks with fewer hits than merge_min_hits: the blob is an ordinary candidate.
    frames = [[det(100, 200), det(140, 200)] for _ in range(5)] + [[Detection((85, 160, 155, 240), 0.9, "person")]] * 5
    st, outs = run(frames, StabilizerConfig(merge_min_hits=10))
    assert any(t.hits > 5 for t in st.tracks)  # the blob was matched to a track
    # Hidden for at most max_merged frames, then the frames count as misses and the tracks go.
    frames = [[det(100, 200), det(140, 200)] for _ in range(20)] + [[Detection((85, 160, 155, 240), 0.9, "person")]] * 30
    cfg = StabilizerConfig(merge_min_hits=10, max_merged=5, max_misses=3)
    st, outs = run(frames, cfg)
    assert all(len(o) == 2 for o in outs[20:25])
    assert all(t.id not in (1, 2) for t in st.tracks)


def test_predict_moves_tracks_on_their_motion_without_counting_misses():
    from streamcam.stabilizer.stabilizer import Stabilizer, StabilizerConfig

    stab = Stabilizer(StabilizerConfig(hits_to_confirm=2, max_misses=1, one_euro_min_cutoff=1e3))
    for k in range(8):  # a person walking right at 100 px/s
        out = stab.update([((100 + 10 * k, 50, 130 + 10 * k, 130), 0.9)], k * 0.1)
    (tid,) = [d.track_id for d in out]
    x_before = out[0].box[0]
    for k in range(8, 12):  # four frames the network skips: more than max_misses
        out = stab.predict(k * 0.1)
        assert [d.track_id for d in out] == [tid]
    assert out[0].box[0] == pytest.approx(x_before + 40, abs=6)
    assert stab.tracks[0].misses == 0 and stab.tracks[0].state == "confirmed"
    out = stab.update([((100 + 10 * 12, 50, 130 + 10 * 12, 130), 0.9)], 1.2)
    assert [d.track_id for d in out] == [tid]  # found again where predicted: the same id
    with pytest.raises(ValueError, match="backwards"):
        stab.predict(1.0)


def test_a_face_whose_emotion_flickers_is_one_track_with_the_emotion_as_its_label():
    """Face mode (hardening #14): one face, its emotion changing from frame to frame, was 2 ids and many
    boxes when labels gated association. With gate_labels off the face is one track and each frame's
    detection carries that frame's emotion."""
    emotions = ["happy", "neutral", "happy", "sad", "happy", "neutral"] * 4
    frames = [[Detection((200 + i, 100, 300 + i, 220), 0.8, e)] for i, e in enumerate(emotions)]
    _, gated = run(frames, StabilizerConfig(hits_to_confirm=3))
    # Gated by label (the behaviour the knob exists to avoid), the face flickers: frames without its box.
    assert sum(len(o) == 1 for o in gated[2:]) < len(emotions) - 2
    st, outs = run(frames, StabilizerConfig(hits_to_confirm=3, gate_labels=False))
    assert all(o == [] for o in outs[:2]) and all(len(o) == 1 for o in outs[2:])
    assert {d.track_id for o in outs for d in o} == {1}
    assert [o[0].label for o in outs[2:]] == emotions[2:]
    (t,) = st.tracks
    assert t.label == emotions[-1] and t.hits == len(emotions)


def test_without_label_gates_two_faces_still_keep_their_own_ids():
    """Off, the gate no longer separates labels; the boxes still separate objects."""
    frames = [[Detection((100 + i, 100, 180 + i, 200), 0.9, "happy" if i % 2 else "sad"),
               Detection((400 - i, 100, 480 - i, 200), 0.9, "sad" if i % 2 else "happy")] for i in range(15)]
    _, outs = run(frames, StabilizerConfig(hits_to_confirm=2, gate_labels=False))
    for o in outs[2:]:
        left, right = sorted(o, key=lambda d: d.box[0])
        assert (left.track_id, right.track_id) == (1, 2)
