"""Paper 000's Table 1 at paper size (GPU users): every row, 5-fold CV, 98 % sensitivity.

EIS models: Adam, lr 2e-5, batch 10, 200 epochs; CNNs (DenseNet121 "Dense", SE-ResNeXt50 "SE-RX")
and joint models (Lin / FC / cross-attention with the state-max GRU): Adam, lr 2.5e-5, batch 20,
100 epochs, random 224 crops of images resized to 300x300, flips, brightness / contrast;
evaluation on 36 crops (6 x 6 grid) and 5 measurement orders. 5 folds stratified by label, the
paper's protocol (train 3 / validate 1 to choose the epochs, then train 4 / predict the fifth).

Command (a folder in skinkeras's EIS layout, e.g. Nevisense exports converted to it, or the
semi-synthetic set of `skinkeras data synth eis --images-from ham10000 --root HAM --out OUT`):

    skinkeras train eis_table1 --data-root DIR --out RUN
    skinkeras evaluate RUN          # Table 1: RUN/evaluation_test/table1.{md,html}, metrics.json

The paper's CNN rows start from ImageNet weights ("Dense Pre", "SE-RX Pre"): add
`--set model.weights=imagenet` where Keras can download them (or a local weights file).
Paper figures (988 lesions, 3,131 measurements): GRU state-max 34.7 % specificity at 98 %
sensitivity (AUC 84.4), Dense Pre 34.4 % (88.8), SE-RX-GRU CA 53.7 % (91.2).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.eis.config import EISConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="eis",
        data=DataConfig(dataset="eis", image_size=224, batch_size=20, use_metadata=False),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="DenseNet121", head="gap", metadata_branch="none", weights=""),
        train=TrainConfig(epochs=100, optimizer="adam", learning_rate=2.5e-5, adam_epsilon=1e-7,
                          class_weights="none", lr_schedule="constant", early_stopping_patience=0),
        task_config=EISConfig(),
    )
