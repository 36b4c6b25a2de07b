"""Lesion segmentation (paper 002's first stage): losses and metrics, training, evaluation, and the
lesion-crop stage that feeds the classifiers.

Submodules import Keras / TensorFlow; import what you need from them, e.g.
`from skinkeras.segmentation.training import train_segmentation, load_segmenter`.
"""
