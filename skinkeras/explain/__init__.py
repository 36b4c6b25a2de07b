"""Explaining predictions: where in the image the model looked (soft-attention maps, Grad-CAM)."""
