"""Events for the people who watch: zones, masks and lines (:mod:`.zones`), the per-track event
lifecycle (:mod:`.lifecycle`), and what turns events into messages, files and notifications:
snapshots and clips (:mod:`.media`), MQTT (:mod:`.mqtt`) and webhooks (:mod:`.webhook`).

The lifecycle reads only published detections (boxes, labels, scores, ``track_id``), so it
sits after the stabilizer wherever that runs; the publisher stage drives it (:mod:`.stage`).
"""
