"""Capture: sources (cameras, files, thermal sequences, the synthetic IR scene) and the capture stage."""
