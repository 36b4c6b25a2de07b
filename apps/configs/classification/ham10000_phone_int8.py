"""The phone model: minimalistic MobileNetV3Small + soft attention + metadata, int8 fast on phone CPUs.

Commands:
    skinkeras train ham10000_phone_int8 --data-root ../shared/data/ham10000 --out runs/phone
    skinkeras evaluate runs/phone --data-root ../shared/data/ham10000 --split test
    skinkeras export runs/phone --format tflite --quantize int8
    skinkeras export runs/phone --format tflite --quantize float32
    skinkeras bench export runs/phone --variants keras float32 int8 --threads 1 2

Why minimalistic: LiteRT 2.3.0's XNNPACK delegate runs int8 HARD_SWISH outside the delegate, so the
hard-swish MobileNetV3Small int8 export is ~3x slower than float32 at 1 thread. keras.applications'
`minimalistic=True` MobileNetV3 (ReLU instead of hard swish, no squeeze-excite, 3x3 kernels) keeps
the whole int8 graph in one XNNPACK partition. int8 of the hard-swish models stays the size option.

Recipe: `ham10000_from_scratch_cpu` (128 px, in-memory cache, Adam lr 3e-4, plateau on val macro
AUC) with the minimalistic backbone and a fixed epoch count sized for 60 minutes on a contended
2-core CPU (`max_minutes` is a safety net).

Measured: (filled in below after the run)
"""

import dataclasses

from skinkeras.experiments.presets import ham10000_soft_attention

EPOCHS = 60


def get_config():
    config = ham10000_soft_attention(
        "MobileNetV3SmallMinimalistic", image_size=128, description=__doc__, epochs=EPOCHS
    )
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, cache="memory"),
        train=dataclasses.replace(
            config.train,
            learning_rate=3e-4,
            adam_epsilon=1e-7,
            monitor="val_auc",
            plateau_factor=0.5,
            plateau_patience=6,
            min_learning_rate=1e-6,
            early_stopping_patience=20,
            max_minutes=55.0,
        ),
    )
