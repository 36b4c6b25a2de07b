"""`ham10000_from_scratch_cpu`'s recipe at paper scale, for GPU users without ImageNet weights.

Paper 001's default backbone and size (MobileNetV3Large + soft attention + metadata, 224 px), trained
from random initialisation with the from-scratch recipe of issue 19 (`ham10000_cpu_recipe`; the CPU
config's docstring holds its ablation): Adam(lr 3e-4, epsilon 1e-7), balanced class weights, 5
warmup epochs, cosine decay over 150 epochs, the last 15 with BatchNormalization frozen, the
prior-adjusted decision rule fitted on val. Mixed precision on a GPU (train.precision auto).

    skinkeras train ham10000_from_scratch_gpu --data-root /path/to/HAM10000 --out runs/scratch_gpu
    skinkeras evaluate runs/scratch_gpu

Not measured here: this project's machines have no GPU (the CPU sibling's figures are measured).
Users who can download ImageNet weights should train `ham10000_soft_attention` (the paper's
transfer-learning recipe), which falls back to this recipe's optimisation when they cannot be had.
"""

from skinkeras.experiments.presets import ham10000_cpu_recipe

EPOCHS = 150


def get_config():
    return ham10000_cpu_recipe("MobileNetV3Large", description=__doc__, epochs=EPOCHS, image_size=224,
                               warmup_epochs=5, freeze_bn_epochs=15)
