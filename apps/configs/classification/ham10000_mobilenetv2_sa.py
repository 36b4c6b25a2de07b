"""MobileNetV2 + soft attention + metadata on HAM10000 (paper 001, Nguyen et al.).

Command:
    skinkeras train ham10000_mobilenetv2_sa --data-root /path/to/HAM10000 --out runs/ham10000_mobilenetv2_sa

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.81, macro AUC 0.97. Balanced accuracy 0.86 (Table A5).
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("MobileNetV2", image_size=224, description=__doc__)
