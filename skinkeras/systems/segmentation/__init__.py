"""Lesion segmentation (paper 002's first stage): task "segmentation".

A U-Net (or a registry-encoder U-Net) trained on lesion masks with Dice + BCE, scored per image
(Dice, Jaccard, ISIC thresholded Jaccard) from its predictions file. The losses, metrics and the
lesion-crop stage it feeds live in `skinkeras.segmentation`.
"""
