"""DenseNet201 + soft attention + metadata on HAM10000 (paper 001, Nguyen et al.).

Command:
    skinkeras train ham10000_densenet201_sa --data-root /path/to/HAM10000 --out runs/ham10000_densenet201_sa

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.89, macro AUC 0.97.
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("DenseNet201", image_size=224, description=__doc__)
