"""streamcam.training."""
