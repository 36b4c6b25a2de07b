"""Paper 000's Table 1 grid sized for a 2-core CPU (<= 60 minutes): every row, 5 folds.

Same rows, folds and report as `eis_table1`; smaller and shorter: the two CNNs are small
from-scratch networks standing in for DenseNet121 / SE-ResNeXt50 (not the paper's models), on
112 px crops of images kept at 150x200 (the shared HAM10000 copy's size), higher learning rates
and short schedules, and the "select" protocol (fold k is predicted by the model chosen on fold
k+1, trained on the other three: half the training of "paper").

Command (the semi-synthetic paired set: real HAM10000 images, generated spectra):

    skinkeras data synth eis --images-from ham10000 --root ../shared/data/ham10000 --out eis_paired
    skinkeras train eis_table1_cpu --data-root eis_paired --out eis_cpu
    skinkeras evaluate eis_cpu
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.eis.config import EISConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="eis",
        data=DataConfig(dataset="eis", image_size=112, batch_size=32, use_metadata=False),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="TinyCNN", head="gap", metadata_branch="none", weights=""),
        train=TrainConfig(epochs=20, optimizer="adam", learning_rate=1e-3, adam_epsilon=1e-7,
                          class_weights="none", lr_schedule="constant", early_stopping_patience=0),
        task_config=EISConfig(
            protocol="select",
            eis_epochs=40,
            eis_learning_rate=1e-3,
            eis_batch_size=32,
            gru_embedding=128,
            dense_backbone="TinyCNN",
            serx_backbone="TinySENet",
            image_height=150,
            image_width=200,
            crop_size=128,
            cnn_epochs=20,
            cnn_learning_rate=1e-3,
            cnn_batch_size=16,
            joint_init="members",
            joint_epochs=8,
            joint_learning_rate=3e-4,
        ),
    )
