"""Paper 002's two-stage ensemble on ISIC 2017: U-Net lesion crop, five SE-CNNs, LC ensemble head.

Command (a lesion segmenter first, then the pipeline, then the report):
    skinkeras train unet_ham10000_masks --data-root /path/to/HAM10000 --out runs/unet_ham10000
    skinkeras train isic2017_two_stage --data-root /path/to/ISIC2017 --out runs/isic2017_two_stage \
        --set two_stage.segmenter_run=runs/unet_ham10000
    skinkeras evaluate runs/isic2017_two_stage --data-root /path/to/ISIC2017

Settings as in the paper (Sec. 4.2): InceptionV3, DenseNet169, ResNet50, InceptionResNetV2, Xception
at 224x224, each with SE on the last feature map -> GAP -> Dense(128) -> Dense(3); Adam with
learning rate 1e-4, up to 100 epochs, early stopping with patience 10. The paper fine-tunes ImageNet
weights (`--set model.weights=imagenet`, needs the Keras weight files); like the other configs here
it starts from random weights unless told. Without the release's Test folder, a stratified 20% of
Training is the test set; Validation fits the ensembles.

Paper's reported results (ISIC 2017 test set, 3-class task, Tables 2-3): InceptionV3 without
segmentation ACC 0.698 / AUC 0.781, with segmentation 0.791 / 0.883; best single model (Xception)
ACC 0.810, AUC 0.896; averaging 0.793 / 0.880; LC ensemble 0.851 / 0.913. Mean of the two challenge
tasks (Table 5): LC ensemble ACC 0.909, precision 0.859, recall 0.808, F1 0.828, AUC 0.911;
stackers (SVC, random forest, extra trees, kNN, GBDT) AUC 0.807-0.816.
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, TrainConfig
from skinkeras.systems.two_stage.config import TwoStageConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="two_stage",
        data=DataConfig(dataset="isic2017", image_size=224, batch_size=32, use_metadata=False),
        model=ModelConfig(backbone="InceptionV3", head="se", metadata_branch="none"),
        train=TrainConfig(
            epochs=100,
            optimizer="adam",
            learning_rate=1e-4,
            adam_epsilon=1e-7,  # Keras' default: the paper names no epsilon
            class_weights="balanced",
            lr_schedule="constant",
            early_stopping_patience=10,
        ),
        task_config=TwoStageConfig(
            backbones=("InceptionV3", "DenseNet169", "ResNet50", "InceptionResNetV2", "Xception"),
            hidden_units=128,
            crop_margin=0.1,
            variants=("segmented", "whole"),
            test_fraction=0.2,
        ),
    )
