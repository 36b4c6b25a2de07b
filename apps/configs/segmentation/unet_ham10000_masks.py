"""U-Net lesion segmentation on HAM10000's masks (paper 002's first stage), sized for a 2-core CPU.

Command (30 minutes of training on a 2-core CPU, then the test-split evaluation):
    skinkeras train unet_ham10000_masks --data-root ../shared/data/ham10000 --out runs/unet_ham10000_masks
    skinkeras evaluate runs/unet_ham10000_masks --data-root ../shared/data/ham10000

Expected: mean Jaccard >= 0.80 on the lesion-grouped test split (HAM10000 masks, 7,993 images).
Paper 002 reports no segmentation figure for its U-Net (it is a means to crop the lesion); the
ISIC 2018 task 1 winners reached a thresholded Jaccard of 0.80 on ISIC's own test set.

CPU sizing: 96 x 96 inputs (the shared HAM10000 images are 200 x 150; squashed to a square, the
same at training and test time), base_filters 16 (paper: 64), BatchNorm, batch 16, Adam 1e-3 with
the Keras epsilon (paper 001's 0.1 trains a U-Net from scratch far too slowly), plateau schedule on
the validation Jaccard, joint image / mask augmentation, train.max_minutes=28.
Measured (niced, on the 2-core CPU while another training run used it: pessimistic): 238-367 s per
epoch of 5,595 training + 1,198 validation images; validation Jaccard 0.787, 0.826, 0.837 after
epochs 1-3. That 3-epoch model (train.max_minutes=14, 14.5 min of training) scored on the 1,200
test images at the masks' resolution: mean Jaccard 0.839 [BCa 95 % CI 0.830, 0.846], thresholded
Jaccard 0.792, Dice 0.904.
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, TrainConfig
from skinkeras.systems.segmentation.config import SegmentationConfig


def get_config():
    return ExperimentConfig(
        name="unet_ham10000_masks",
        description=__doc__,
        task="segmentation",
        data=DataConfig(
            dataset="ham10000",
            image_size=96,
            batch_size=16,
            use_metadata=False,
            augment=True,
            cache="",  # the 200 x 150 JPEGs decode in well under 1 ms; the U-Net is the cost
        ),
        task_config=SegmentationConfig(architecture="unet", base_filters=16, dice_weight=1.0, bce_weight=1.0),
        train=TrainConfig(
            epochs=40,
            learning_rate=1e-3,
            adam_epsilon=1e-7,
            lr_schedule="plateau",
            plateau_factor=0.3,
            plateau_patience=2,
            early_stopping_patience=6,
            monitor="val_jaccard",
            precision="float32",
            max_minutes=28.0,
        ),
    )
