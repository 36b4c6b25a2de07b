"""MobileNetV3Small + soft attention + metadata on HAM10000 (paper 001, Nguyen et al.).

Command:
    skinkeras train ham10000_mobilenetv3small_sa --data-root /path/to/HAM10000 --out runs/ham10000_mobilenetv3small_sa

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.78, macro AUC 0.96. Balanced accuracy 0.87 (Table A5).
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("MobileNetV3Small", image_size=224, description=__doc__)
