"""MobileNetV3Small + soft attention + paper-001 metadata, trained from scratch on a 2-core CPU in an hour.

    skinkeras train ham10000_from_scratch_cpu --data-root ../shared/data/ham10000 --out runs/scratch
    skinkeras evaluate runs/scratch

Paper 001's reported result (ImageNet weights) is in `ham10000_mobilenetv3small_sa`.
"""

from skinkeras.experiments.presets import ham10000_cpu_recipe

EPOCHS = 36


def get_config():
    return ham10000_cpu_recipe("MobileNetV3Small", description=__doc__, epochs=EPOCHS)
