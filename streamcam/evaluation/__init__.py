"""Evaluation: how well models, box rules and the stabilizer do against ground truth (offline).

* :mod:`.pipeline` — ``streamcam eval``: a pipeline config's localization on held-out synthetic frames
* :mod:`.localization`, :mod:`.frames`, :mod:`.wsol` — localization metrics (CAM paper, MaxBoxAcc)
* :mod:`.calibration` — fitting a model's box rule (threshold, box correction)
* :mod:`.tracking`, :mod:`.peer_trackers` — the stabilizer on synthetic clips, beside peer trackers
* :mod:`.real`, :mod:`.mot` — real footage with MOTChallenge ground truth
"""
