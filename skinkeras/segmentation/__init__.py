"""Lesion segmentation parts (paper 002's first stage): Dice + BCE loss and per-image metrics
(`losses`) and the lesion-crop stage that feeds the classifiers (`crop`). The "segmentation" task
(trainer, evaluator) is `skinkeras.systems.segmentation`.
"""
