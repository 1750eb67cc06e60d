"""streamcam.publisher."""
