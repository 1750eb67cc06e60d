"""Pretrained models brought into streamcam's ONNX format (converters; torch is imported only by them)."""
