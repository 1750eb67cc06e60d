"""streamcam.evaluation."""
