"""InceptionResNetV2 + soft attention + metadata on HAM10000 (paper 001, Nguyen et al.).

Command:
    skinkeras train ham10000_inceptionresnetv2_sa --data-root /path/to/HAM10000 --out runs/ham10000_inceptionresnetv2_sa

Paper's reported result (ImageNet weights, metadata, balanced class weights; random image-level
split, so optimistic): accuracy 0.90, macro AUC 0.975. Best model of the paper: mean precision 0.81, F1 0.81, recall 0.82, AUC 0.989 in the abstract.
"""

from skinkeras.experiments.presets import ham10000_soft_attention


def get_config():
    return ham10000_soft_attention("InceptionResNetV2", image_size=299, description=__doc__)
