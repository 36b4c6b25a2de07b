"""MobileNetV3Large + soft attention + metadata on HAM10000: the default, phone-sized model (paper 001).

Command:
    skinkeras train ham10000_soft_attention --data-root /path/to/HAM10000 --out runs/ham10000
    make train-ham10000 DATA=/path/to/HAM10000

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.86, balanced accuracy 0.87, macro AUC 0.97 (Tables 5, 7, A5).
From scratch on a 2-core CPU in under an hour the floor we test for is balanced accuracy >= 0.55 and
macro AUC >= 0.85 on a lesion-grouped test split.
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("MobileNetV3Large", image_size=224, description=__doc__)
