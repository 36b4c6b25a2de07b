"""Paper 003's sample weighting grid sized for a 2-core CPU: the 20 Adam rows (Tables 2 and 3) x 2 splits.

Same rows (Adam only: CEL / FL (gamma 1) x none / CB / ES / SPL / OHEM x flat / hierarchical),
splits (two lesion-grouped 80/20 splits, seeds 0 and 1, 10 % of each 80 % for choosing the epoch)
and report as `weighting_grid`; smaller and shorter, for the CPU budget (<= 120 minutes):
- TinyCNN (from scratch) with the same heads (CBAM, ratio 8; the hierarchical model's per-level
  CBAM + LSTM of 64 units) at 64 px instead of ImageNet VGG16 at 299 px, no colour normalisation;
- Adam 1e-3 (from scratch; the paper's 1e-5 fine-tunes ImageNet weights), batch 32, 20 epochs
  (flat) and 16 (hierarchical) instead of 150 / 250, the learning rate / 10 at 50 % and 75 %;
- the SGD tables (4 and 5) are left out (`--set weighting.rows=...` adds them).

Command:

    skinkeras train weighting_grid_cpu --data-root ../shared/data/ham10000 --out weighting_cpu
    skinkeras evaluate weighting_cpu

Measured on this 2-core machine (2026-12-07), the shared HAM10000 copy (7,993 images after the
loader's rules; split 0: 5,757 train / 639 val / 1,597 test, split 1: 1,599 test), 10 flat / 8
hierarchical epochs:
- Grid: 52 min 43 s wall for all 40 cells (flat cells 68-84 s, hierarchical cells 55-60 s), part of it
  beside a `make test` run; `evaluate`: 87 s.
- Balanced accuracy, % (mean over the two splits, sd), and the permutation test against the CEL
  baseline on each split (10,000):
  flat: CEL 26.4 (0.3); CB 54.5 (0.4), p 0.0001 / 0.0001; ES 50.3 (6.6), p 0.0001 / 0.0001;
  SPL 19.3; OHEM 29.8; FL 27.7, FL + CB 55.8, FL + ES 54.4, FL + SPL 21.3, FL + OHEM 30.5.
  hierarchical: CEL 25.8 (2.1); CB 52.9 (2.2) and ES 51.0 (2.3), p 0.0001 on both splits; SPL 15.1;
  OHEM 24.6; FL 23.0, FL + CB 49.3, FL + ES 46.9.
  The paper's main effect (CB / ES raise balanced accuracy over CEL) holds for both models. SPL
  lowers it here: with 10 epochs, the easy half it keeps early is mostly nevi. These are small
  from-scratch models on a short schedule (the paper: ImageNet VGG16, 150 / 250 epochs; CEL 72.5).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.weighting import rows
from skinkeras.systems.weighting.config import WeightingConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="weighting",
        data=DataConfig(dataset="ham10000", image_size=64, batch_size=32, use_metadata=False, augment=True,
                        color_constancy=False),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="TinyCNN", head="cbam", metadata_branch="none", weights=""),
        train=TrainConfig(optimizer="adam", adam_epsilon=1e-7, focal_gamma=1.0, lr_schedule="milestones",
                          lr_milestones=(0.5, 0.75), milestone_factor=0.1, early_stopping_patience=0,
                          class_weights="none", precision="float32"),
        task_config=WeightingConfig(rows=rows.rows_of(optimizer="adam"), flat_epochs=10, hierarchical_epochs=8,
                                    adam_learning_rate=1e-3, lstm_units=64, cbam_ratio=8),
    )
