"""The event lifecycle on scripted tracks: new once in a zone for min_frames, rate-limited updates,
end when the track ends or leaves, stationary objects stay one event, masks and line counts."""

from __future__ import annotations

import dataclasses

from streamcam.events.config import EventsConfig
from streamcam.events.lifecycle import EventTracker
from streamcam.events.zones import LineConfig, MaskConfig, ZoneConfig
from streamcam.protocol import Detection

W, H = 640, 480
FPS = 10
YARD = ZoneConfig("yard", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))  # the right half


def person(x: float, y: float = 300.0, tid: int | None = 1, score: float = 0.8, label: str = "person") -> Detection:
    return Detection((x - 20, y - 100, x + 20, y), score, label, tid)


def run(tracker: EventTracker, frames: list[list[Detection]], start: int = 0) -> list[dict]:
    out = []
    for i, dets in enumerate(frames, start):
        out += tracker.update(dets, i * 1_000_000_000 // FPS, i, W, H).events
    return out


def types(events):
    return [e["type"] for e in events]


def test_walking_into_a_zone_gives_one_new_and_one_end():
    tr = EventTracker("cam", EventsConfig(min_frames=3, lost_frames=5), zones=[YARD])
    walk = [[person(100 + 10 * i)] for i in range(50)] + [[]] * 10  # crosses x=320 at i=22, then vanishes
    events = run(tr, walk)
    new = [e for e in events if e["type"] == "new"]
    end = [e for e in events if e["type"] == "end"]
    assert len(new) == 1 and len(end) == 1
    assert new[0]["zones"] == ["yard"] and new[0]["id"] == end[0]["id"]
    # in the zone at frame 22 (anchor x=320 is on the edge, 23 inside), new after min_frames=3 inside frames
    assert new[0]["start_ns"] == 0 and end[0]["end_ns"] == 49 * 100_000_000
    assert not tr.open_events


def test_no_event_before_min_frames_and_none_for_a_glimpse():
    tr = EventTracker("cam", EventsConfig(min_frames=3, lost_frames=2), zones=[YARD])
    assert run(tr, [[person(400)], [person(400)], [], [], [], []]) == []


def test_leaving_the_zones_ends_the_event_and_coming_back_is_a_new_one():
    cfg = EventsConfig(min_frames=2, leave_frames=3, lost_frames=50)
    tr = EventTracker("cam", cfg, zones=[YARD])
    frames = [[person(400)]] * 5 + [[person(100)]] * 5 + [[person(400)]] * 5
    assert types(run(tr, frames)) == ["new", "end", "new"]


def test_without_zones_the_frame_is_the_zone():
    tr = EventTracker("cam", EventsConfig(min_frames=4, lost_frames=3))
    events = run(tr, [[person(100 + 10 * i)] for i in range(10)] + [[]] * 5)
    assert types(events) == ["new", "end"] and events[0]["zones"] == []


def test_an_object_that_never_moved_ends_after_the_still_memory():
    # lost before it was stationary, but it never moved: parked for still_memory_s (it may come back)
    tr = EventTracker("cam", EventsConfig(min_frames=2, lost_frames=3, still_memory_s=2.0, stationary_s=60))
    events = run(tr, [[person(100)]] * 10 + [[]] * 40)
    assert types(events) == ["new", "end"] and events[-1]["end_ns"] == 9 * 100_000_000


def test_a_walker_through_a_parked_spot_is_its_own_event():
    cfg = EventsConfig(min_frames=3, lost_frames=3, stationary_s=1.0, update_interval_s=0.0)
    tr = EventTracker("cam", cfg)
    car = [[person(300, tid=1, label="car")]] * 20  # stationary, then lost: parked
    walker = [[person(200 + 10 * i, tid=2, label="car")] for i in range(20)]  # drives through the same spot
    events = run(tr, car + [[]] * 5 + walker + [[]] * 5)
    assert types(events).count("new") == 2


def test_updates_are_rate_limited_and_carry_the_best_score():
    tr = EventTracker("cam", EventsConfig(min_frames=1, update_interval_s=1.0, score_step=0.05, lost_frames=3))
    frames = [[person(100, score=0.5 + 0.02 * i)] for i in range(21)]  # the score climbs every frame for 2 s
    events = run(tr, frames)
    updates = [e for e in events if e["type"] == "update"]
    assert types(events)[0] == "new" and 1 <= len(updates) <= 2  # at most one per second
    assert updates[-1]["score"] > events[0]["score"]
    ts = [e["score"] for e in updates]
    assert ts == sorted(ts)


def test_untracked_detections_make_no_events():
    tr = EventTracker("cam", EventsConfig(min_frames=1))
    assert run(tr, [[person(100, tid=None)]] * 10) == []


def test_a_parked_object_is_one_stationary_event_that_never_retriggers():
    cfg = EventsConfig(min_frames=3, lost_frames=3, stationary_s=2.0, parked_memory_s=60.0, update_interval_s=0.0)
    tr = EventTracker("cam", cfg)
    car = lambda tid: person(300, tid=tid, label="car")  # noqa: E731
    # Parked for 4 s, lost for 2 s, found again with a new track id, lost, found again: one event.
    frames = [[car(1)]] * 40 + [[]] * 20 + [[car(2)]] * 30 + [[]] * 20 + [[car(3)]] * 30
    events = run(tr, frames)
    assert types(events).count("new") == 1 and "end" not in types(events)
    stationary = [e for e in events if e["stationary"]]
    assert stationary and stationary[0]["type"] == "update"
    assert len(tr.open_events) == 1 and tr.open_events[0].track_id == 3
    # a parked object forgotten after parked_memory_s ends once
    tr2 = EventTracker("cam", EventsConfig(min_frames=3, lost_frames=3, stationary_s=1.0, parked_memory_s=2.0))
    assert types(run(tr2, [[car(1)]] * 20 + [[]] * 40)) == ["new", "update", "end"]


def test_a_moving_object_is_not_stationary():
    tr = EventTracker("cam", EventsConfig(min_frames=1, stationary_s=1.0, update_interval_s=0.0))
    events = run(tr, [[person(100 + 5 * i)] for i in range(50)])
    assert not any(e["stationary"] for e in events)


def test_masked_detections_are_dropped():
    mask = MaskConfig(((0.0, 0.0), (0.25, 0.0), (0.25, 1.0), (0.0, 1.0)))  # the left quarter
    tr = EventTracker("cam", EventsConfig(min_frames=1), masks=[mask])
    fe = tr.update([person(50, tid=1), person(400, tid=2)], 0, 0, W, H)
    assert [d.track_id for d in fe.kept] == [2]
    assert [e["track_id"] for e in fe.events] == [2]


def test_loitering_in_a_zone_is_flagged():
    zone = ZoneConfig("door", YARD.points, min_frames=1, loitering_s=2.0)
    tr = EventTracker("cam", EventsConfig(min_frames=1, update_interval_s=0.0, stationary_s=100), zones=[zone])
    events = run(tr, [[person(400 + (i % 2) * 30)] for i in range(30)])
    loiter = [e for e in events if e["loitering"]]
    assert events[0]["type"] == "new" and not events[0]["loitering"]
    assert loiter and loiter[0]["type"] == "update"


def test_line_crossings_are_counted_per_direction():
    line = LineConfig("gate", ((0.5, 0.0), (0.5, 1.0)))
    tr = EventTracker("cam", EventsConfig(min_frames=1), lines=[line])
    run(tr, [[person(100 + 20 * i, tid=1), person(600 - 20 * i, tid=2)] for i in range(25)])
    assert tr.line_counts["gate"]["in"] + tr.line_counts["gate"]["out"] == 2
    assert tr.line_counts["gate"]["in"] == 1
    # a track that walks along the line below its end never crosses it
    tr2 = EventTracker("cam", EventsConfig(min_frames=1), lines=[LineConfig("short", ((0.5, 0.0), (0.5, 0.3)))])
    run(tr2, [[person(100 + 20 * i, y=400)] for i in range(25)])
    assert tr2.line_counts["short"] == {"in": 0, "out": 0}


def test_counts_follow_open_events_and_close_ends_everything():
    tr = EventTracker("cam", EventsConfig(min_frames=1))
    fe = tr.update([person(100, tid=1), person(300, tid=2), person(500, tid=3, label="car")], 0, 0, W, H)
    assert fe.counts == {"person": 2, "car": 1}
    assert tr.update([person(100, tid=1), person(300, tid=2), person(500, tid=3, label="car")], 1, 1, W, H).counts is None
    fe = tr.close(2)
    assert types(fe.events) == ["end"] * 3 and fe.counts == {"person": 0, "car": 0}


def test_events_messages_round_trip_and_bad_ones_are_rejected():
    import pytest

    from streamcam import protocol
    from streamcam.errors import ProtocolError

    tr = EventTracker("cam", EventsConfig(min_frames=1))
    fe = tr.update([person(100)], 5, 3, W, H)
    parts = protocol.encode("events", "cam", 3, 5, (), events=fe.events, counts=fe.counts)
    msg = protocol.decode(parts)
    assert msg.topic == "events/cam" and msg.header["events"][0]["type"] == "new"
    assert msg.header["counts"] == {"person": 1}
    for bad in ([{"type": "begin", "id": "x", "label": "person"}], [{"type": "new", "id": 3, "label": "p"}], "new"):
        with pytest.raises(ProtocolError) as err:
            protocol.decode(protocol.encode("events", "cam", 0, 0, (), events=bad))
        assert err.value.reason == "bad_event"


def test_an_id_switch_continues_the_event():
    tr = EventTracker("cam", EventsConfig(min_frames=2, lost_frames=5))
    frames = [[person(100 + 5 * i, tid=1)] for i in range(10)] + [[person(150 + 5 * i, tid=2)] for i in range(10)]
    events = run(tr, frames + [[]] * 8)
    assert types(events) == ["new", "end"] and events[-1]["track_id"] == 2
    # far away, it is another object; and with handover off, an id switch is a new event
    tr2 = EventTracker("cam", EventsConfig(min_frames=2, lost_frames=5))
    assert types(run(tr2, [[person(100, tid=1)]] * 5 + [[person(500, tid=2)]] * 5)).count("new") == 2
    tr3 = EventTracker("cam", EventsConfig(min_frames=2, lost_frames=5, handover_distance=0))
    assert types(run(tr3, frames)).count("new") == 2


def test_a_replacement_track_seen_beside_the_old_one_continues_the_event():
    # The stabilizer starts track 2 on the person two frames before it drops track 1 (both seen
    # in frames 10-11): when track 2 would open its event, track 1 is lost and its event goes on.
    tr = EventTracker("cam", EventsConfig(min_frames=3, lost_frames=5))
    frames = ([[person(100 + 5 * i, tid=1)] for i in range(10)]
              + [[person(150, tid=1), person(152, tid=2)], [person(155, tid=1), person(157, tid=2)]]
              + [[person(160 + 5 * i, tid=2)] for i in range(10)])
    events = run(tr, frames + [[]] * 8)
    assert types(events) == ["new", "end"] and events[-1]["track_id"] == 2
    # two people side by side, both seen throughout, are two events
    tr2 = EventTracker("cam", EventsConfig(min_frames=3, lost_frames=5))
    side_by_side = [[person(100 + 5 * i, tid=1), person(130 + 5 * i, tid=2)] for i in range(20)]
    assert types(run(tr2, side_by_side)).count("new") == 2


def test_standing_on_a_zone_edge_is_one_event():
    # The anchor sways 3 px either side of the zone's left edge (x = 320), a second at a time,
    # for 10 s: one event; only walking clearly out of the zone ends it.
    cfg = EventsConfig(min_frames=3, leave_frames=3, lost_frames=50)
    assert cfg.leave_margin * 100 > 3  # box height 100 px
    tr = EventTracker("cam", cfg, zones=[YARD])
    stand = [[person(330)]] * 5 + [[person(320 + (3 if i % 20 < 10 else -3))] for i in range(100)]
    events = run(tr, stand + [[person(320 - 5 * i)] for i in range(1, 20)])
    assert [t for t in types(events) if t != "update"] == ["new", "end"]  # (an update: it became stationary)
    # leave_margin 0: every second outside ends it, and the next inside starts another
    tr0 = EventTracker("cam", dataclasses.replace(cfg, leave_margin=0.0), zones=[YARD])
    assert types(run(tr0, stand)).count("new") == 5


def test_a_box_cut_by_the_frame_bottom_stays_in_a_zone_drawn_to_the_bottom():
    # A person near the camera, feet below the frame: the box's bottom is the frame's (y = 480),
    # on the zone's edge. One event, not an end and a new one when the feet come back into view.
    near = ZoneConfig("near", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))
    tr = EventTracker("cam", EventsConfig(min_frames=3, leave_frames=3, leave_margin=0.0, lost_frames=5),
                      zones=[near])
    walk = [[person(300, y=400 + 8 * i)] for i in range(10)] + [[person(300, y=480)]] * 20
    walk += [[person(300, y=470 - 8 * i)] for i in range(10)] + [[]] * 8
    assert types(run(tr, walk)) == ["new", "end"]


def test_a_track_that_handed_its_event_on_and_comes_back_rejoins_it():
    # Track 1's person is lost for two frames; track 2 takes the event on; then the stabilizer finds
    # track 1 again beside track 2 (two boxes on one person, as a CAM blob split in two gives).
    cfg = EventsConfig(min_frames=3, lost_frames=5)
    frames = ([[person(100 + 5 * i, tid=1)] for i in range(10)] + [[], []]
              + [[person(160 + 5 * i, tid=2)] for i in range(5)]
              + [[person(185 + 5 * i, tid=2), person(185 + 5 * i, y=270, tid=1)] for i in range(10)]
              + [[person(235 + 5 * i, tid=1)] for i in range(5)] + [[]] * 8)
    events = run(EventTracker("cam", cfg), frames)
    assert [t for t in types(events) if t != "update"] == ["new", "end"]
    assert events[-1]["end_ns"] == 31 * 100_000_000  # when the last of its tracks was seen
    # without rejoin, the returning id is another object
    events = run(EventTracker("cam", dataclasses.replace(cfg, rejoin=False)), frames)
    assert types(events).count("new") == 2


def test_an_event_carried_by_two_tracks_ends_when_the_last_leaves_the_zones():
    cfg = EventsConfig(min_frames=3, leave_frames=2, lost_frames=5, leave_margin=0.0)
    tr = EventTracker("cam", cfg, zones=[YARD])
    frames = ([[person(400 + 5 * i, tid=1)] for i in range(5)] + [[]] * 2
              + [[person(440, tid=2)]] * 5  # takes the event on where track 1 went quiet
              + [[person(440, tid=2), person(445, tid=1)]] * 5  # track 1 is back: it rejoins
              + [[person(100, tid=2), person(445, tid=1)]] * 5  # track 2 leaves the zone; 1 stays in
              + [[person(100, tid=2), person(100, tid=1)]] * 5)  # both out: the end
    events = run(tr, frames)
    assert [t for t in types(events) if t != "update"] == ["new", "end"]
    assert events[-1]["end_ns"] == 22 * 100_000_000  # its last frame counted in (leave_frames: 2)
