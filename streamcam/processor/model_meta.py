"""Model metadata: what a GAP network needs to be run and explained, stored inside its ONNX file.

Nothing about a model is hard-coded elsewhere: input size, colour order, mean/std,
class names, output names and the classifier weights used for CAM all travel in
the ONNX file's ``metadata_props`` under the key ``streamcam`` (one JSON object).
The classifier weights are stored as base64 little-endian float32 so that CAM can
be computed from the ``features`` output without the framework that trained it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:
    from .boxes import BoxRule

METADATA_KEY = "streamcam"
METADATA_VERSION = 1


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode_array(d: dict[str, Any], key: str) -> np.ndarray:
    try:
        shape = tuple(int(s) for s in d["shape"])
        raw = base64.b64decode(d["b64"], validate=True)
        a = np.frombuffer(raw, dtype="<f4")
        return a.reshape(shape).astype(np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model metadata {key!r} is not a valid encoded array: {exc}") from exc


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to preprocess, run and explain one GAP classification network."""

    classes: tuple[str, ...]
    """Class names, index-aligned with the ``logits`` output."""
    input_width: int
    input_height: int
    input_channels: int
    """1 for grey (thermal) models, 3 for colour."""
    color_order: str
    """Channel order the network expects: ``GRAY``, ``RGB`` or ``BGR``."""
    mean: tuple[float, ...]
    """Per-channel mean subtracted after scaling pixels to [0, 1]."""
    std: tuple[float, ...]
    """Per-channel std divided after subtracting the mean."""
    cam_weights: np.ndarray = field(repr=False)
    """Classifier weights ``[C, K]``: CAM_c = sum_k w[c, k] * features_k (Zhou et al. 2016)."""
    cam_bias: np.ndarray = field(repr=False)
    """Classifier bias ``[C]``: mean(CAM_c) + b_c == logit_c for a GAP + linear head."""
    resize: str = "stretch"
    """``stretch`` (resize to the input size) or ``letterbox`` (keep aspect, pad)."""
    logits_output: str = "logits"
    features_output: str = "features"
    input_name: str = "input"
    cam_threshold: float = 0.2
    """Box threshold as a fraction of the CAM maximum (the CAM paper uses 20 %)."""
    box_shrink_cells: float = 0.0
    """Pulled in from the left and right of a CAM box, in feature-map cells: a CAM blob is the
    object blurred by the receptive field and the upsampling, so it is wider than the object
    by about a constant (calibrated on validation frames, see streamcam.evaluation.calibration)."""
    box_shrink_cells_y: float | None = None
    """The same from the top, and from the bottom unless ``box_shrink_cells_bottom`` is set
    (None: as box_shrink_cells); objects are not square."""
    box_shrink_cells_bottom: float | None = None
    """Pulled in from the bottom (negative: pushed out; None: as the top). A net that learned a
    person from a few pictures puts its evidence on the head and shoulders, the hottest part
    of a thermal figure: its blob starts above the head and stops near the waist."""
    box_shrink_rel: float = 0.0
    """Also pulled in from each side, as a fraction of the box's own width/height."""
    box_aspect: float | None = None
    """Object height / width. When set, a box's width is its (pulled-in) height / box_aspect,
    centred on the blob, instead of the blob's own width; None: the blob's width."""
    box_correction: dict[str, list[float]] | None = None
    """The stabilizer's size calibration of this model's boxes, ``{"width": [a, b, c], "height":
    [a, b, c]}`` (``streamcam.stabilizer.box_correction.BoxCorrection``), fitted on tracking clips by
    ``python -m streamcam.evaluation.tracking --fit-box-correction --write``; None: none. It
    travels with the model because it describes this model's boxes and no other's."""
    cam_floor: str = "zero"
    """What ``cam_threshold`` counts from: ``zero`` (the raw map, negatives clipped: min-max of the
    ReLU'd map) or ``ivr`` (the map's 45th percentile, Kim et al. ICCV 2021); chosen by calibration."""
    presence: str = "mean"
    """How a frame's class probabilities are read: ``mean``, the network's own GAP logits (a net
    trained on crops or whole images); ``peak``, the class maps at the cell where the first
    positive class leads most (a multiple-instance head: one person among a thousand background
    cells decides the frame, as in training)."""
    peak_boxes: dict[str, Any] | None = None
    """The peak box rule (:class:`~streamcam.processor.peak_boxes.PeakBoxRule` fields: level, radius,
    nms, size [a, b], centre, centre_x, aspect, contain), calibrated on box-labelled frames of a fixed
    camera; None: boxes from the map's blobs by the margins above."""
    positive_classes: tuple[str, ...] = ()
    """Classes that mean "an object is here" (their CAM gives boxes); empty means all."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """How the model was made: recipe, seed, data, dates, metrics."""

    def __post_init__(self) -> None:
        c, k = len(self.classes), None
        if c == 0:
            raise ModelError("model metadata: expected at least one class, got none")
        if self.cam_weights.ndim != 2 or self.cam_weights.shape[0] != c:
            raise ModelError(
                f"model metadata: expected cam_weights of shape [{c}, K], got {list(self.cam_weights.shape)}"
            )
        k = self.cam_weights.shape[1]
        if self.cam_bias.shape != (c,):
            raise ModelError(f"model metadata: expected cam_bias of shape [{c}], got {list(self.cam_bias.shape)}")
        if self.input_channels not in (1, 3):
            raise ModelError(f"model metadata: expected input_channels 1 or 3, got {self.input_channels}")
        if len(self.mean) != self.input_channels or len(self.std) != self.input_channels:
            raise ModelError(
                f"model metadata: expected {self.input_channels} mean/std values, got {len(self.mean)}/{len(self.std)}"
            )
        if self.color_order not in ("GRAY", "RGB", "BGR"):
            raise ModelError(f"model metadata: expected color_order GRAY, RGB or BGR, got {self.color_order!r}")
        if self.resize not in ("stretch", "letterbox"):
            raise ModelError(f"model metadata: expected resize 'stretch' or 'letterbox', got {self.resize!r}")
        if not 0.0 < self.cam_threshold < 1.0:
            raise ModelError(f"model metadata: expected 0 < cam_threshold < 1, got {self.cam_threshold}")
        sy = self.box_shrink_cells if self.box_shrink_cells_y is None else self.box_shrink_cells_y
        if not (0.0 <= self.box_shrink_cells <= 8.0 and 0.0 <= sy <= 8.0 and 0.0 <= self.box_shrink_rel < 0.5):
            raise ModelError(
                f"model metadata: expected 0 <= box_shrink_cells <= 8 and 0 <= box_shrink_rel < 0.5, "
                f"got {self.box_shrink_cells}, {self.box_shrink_rel}"
            )
        if self.box_shrink_cells_bottom is not None and not -8.0 <= self.box_shrink_cells_bottom <= 8.0:
            raise ModelError(f"model metadata: expected -8 <= box_shrink_cells_bottom <= 8, "
                             f"got {self.box_shrink_cells_bottom}")
        if self.box_aspect is not None and not 0.1 <= self.box_aspect <= 10.0:
            raise ModelError(f"model metadata: expected box_aspect (height / width) in [0.1, 10] or null, "
                             f"got {self.box_aspect}")
        if self.box_correction is not None:
            bc = self.box_correction
            if (not isinstance(bc, dict) or set(bc) != {"width", "height"}
                    or not all(isinstance(v, (list, tuple)) and len(v) == 3 for v in bc.values())):
                raise ModelError(f"model metadata: expected box_correction {{width: [a, b, c], height: [a, b, c]}} "
                                 f"or null, got {bc!r}")
            if not all(np.isfinite(float(c)) for v in bc.values() for c in v):
                raise ModelError(f"model metadata: box_correction holds a non-finite number: {bc!r}")
        if self.cam_floor not in ("zero", "ivr"):
            raise ModelError(f"model metadata: expected cam_floor 'zero' or 'ivr', got {self.cam_floor!r}")
        if self.presence not in ("mean", "peak"):
            raise ModelError(f"model metadata: expected presence 'mean' or 'peak', got {self.presence!r}")
        if self.peak_boxes is not None:
            from .peak_boxes import PeakBoxRule

            PeakBoxRule.from_dict(self.peak_boxes)  # validates, naming the field
        unknown = set(self.positive_classes) - set(self.classes)
        if unknown:
            raise ModelError(f"model metadata: positive_classes {sorted(unknown)} are not among classes {self.classes}")
        del k

    @property
    def box_rule(self) -> "BoxRule":
        """The calibrated :class:`~streamcam.processor.boxes.BoxRule` of this model's CAM boxes."""
        from .boxes import BoxRule

        top = self.box_shrink_cells if self.box_shrink_cells_y is None else self.box_shrink_cells_y
        bottom = top if self.box_shrink_cells_bottom is None else self.box_shrink_cells_bottom
        return BoxRule(self.box_shrink_cells, top, bottom, self.box_shrink_rel, self.box_aspect)

    @property
    def feature_channels(self) -> int:
        return int(self.cam_weights.shape[1])

    def class_index(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise ModelError(f"class {name!r} is not in the model's classes {list(self.classes)}") from None

    def to_json(self) -> str:
        d = asdict(self)
        d["cam_weights"] = _encode_array(self.cam_weights)
        d["cam_bias"] = _encode_array(self.cam_bias)
        d["version"] = METADATA_VERSION
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "ModelMetadata":
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model metadata is not valid JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise ModelError("model metadata: expected a JSON object")
        version = d.pop("version", None)
        if version != METADATA_VERSION:
            raise ModelError(f"model metadata: expected version {METADATA_VERSION}, got {version!r}")
        try:
            d["cam_weights"] = _decode_array(d["cam_weights"], "cam_weights")
            d["cam_bias"] = _decode_array(d["cam_bias"], "cam_bias")
            for key in ("classes", "mean", "std", "positive_classes"):
                if key in d:
                    d[key] = tuple(d[key])
            return cls(**d)
        except KeyError as exc:
            raise ModelError(f"model metadata: missing key {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ModelError(f"model metadata: {exc}") from exc


def read_metadata(onnx_path: str) -> ModelMetadata:
    """Read a model's metadata with ONNX Runtime (no torch or onnx package needed)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        raise ModelError(f"cannot load model {onnx_path}: {exc}") from exc
    meta = sess.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelError(
            f"model {onnx_path} has no '{METADATA_KEY}' metadata: export it with streamcam (streamcam train / export)"
        )
    return ModelMetadata.from_json(meta[METADATA_KEY])


def update_metadata(onnx_path: str, **changes: Any) -> ModelMetadata:
    """Rewrite a model's streamcam metadata with ``changes`` (field=value); the graph is untouched.

    For calibrations made after export (box rule, box-size correction). Needs the ``onnx`` package."""
    import dataclasses

    import onnx

    model = onnx.load(str(onnx_path))
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None)
    if entry is None:
        raise ModelError(f"model {onnx_path} has no '{METADATA_KEY}' metadata: export it with streamcam first")
    try:
        meta = dataclasses.replace(ModelMetadata.from_json(entry.value), **changes)
    except TypeError as exc:  # an unknown field name
        raise ModelError(f"update_metadata: {exc}") from None
    entry.value = meta.to_json()
    onnx.save(model, str(onnx_path))
    return meta
