"""ResNet50 + soft attention + metadata on HAM10000 (paper 001, Nguyen et al.).

Command:
    skinkeras train ham10000_resnet50_sa --data-root /path/to/HAM10000 --out runs/ham10000_resnet50_sa

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.70, macro AUC 0.93.
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("ResNet50", image_size=224, description=__doc__)
