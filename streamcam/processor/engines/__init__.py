"""streamcam.processor.engines."""
