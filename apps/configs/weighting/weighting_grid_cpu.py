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

NOT RUN YET: the grid has not been run; no figure of it exists. Its size comes from one measurement
(2026-12-07, this 2-core machine, while another training job ran on the same cores):

    skinkeras train weighting_grid_cpu --data-root ../shared/data/ham10000 --out /tmp/wgrid_measure \
        --set weighting.rows=flat_adam_cel_none,hierarchical_adam_cel_spl --set weighting.split_seeds=0 \
        --set weighting.flat_epochs=3 --set weighting.hierarchical_epochs=3

(7,993 images; split 0: 5,757 train, 639 val, 1,597 test; 179 steps of 32 per epoch): a training
epoch took 5.2-7.6 s flat (6.1 s the first) and 7.9-8.0 s hierarchical (13.8 s the first, tracing);
a whole cell of 3 epochs 26 s flat and 39 s hierarchical, i.e. about 7 s and 10 s per cell for
building, the validation passes (~1 s each), the test predictions and saving. On a less loaded
moment the flat epoch took 3.7-4.0 s (6 epochs of flat_adam_cel_cb).
Estimate: flat cell 6 + 20 x (6.2 + 1) = 150 s, hierarchical cell 13 + 16 x (8 + 1) = 157 s;
20 cells of each = 6,140 s, about 102 minutes for both splits (plus ~10 s loading the data), with the
load of the measurement. `evaluate` adds about 2 minutes (measured on the measurement's run: ~1.4 s of
BCa intervals, 4 metrics x 10,000 resamples, per cell; 1.6 s per permutation test of 10,000 on
1,597 images; the grid has 40 cells and 36 tests).
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
