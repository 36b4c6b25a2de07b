"""MobileNetV3Small + soft attention + paper-001 metadata, trained from scratch on a 2-core CPU in an hour.

(Docstring with measured figures to follow.)
"""

from skinkeras.experiments.presets import ham10000_cpu_recipe

EPOCHS = 36


def get_config():
    return ham10000_cpu_recipe("MobileNetV3Small", description=__doc__, epochs=EPOCHS)
