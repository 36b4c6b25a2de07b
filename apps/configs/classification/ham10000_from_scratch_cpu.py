"""MobileNetV3Small + soft attention + paper-001 metadata, trained from scratch on a CPU in under an hour.

Command (the issue-4 acceptance run):
    skinkeras train ham10000_from_scratch_cpu --data-root ../shared/data/ham10000 --out runs/from_scratch
    skinkeras evaluate runs/from_scratch --data-root ../shared/data/ham10000 --split test

Measured on a 2-core CPU (float32, shared with lighter niced jobs), 2026-11-22: early-stopped after
95 epochs in 54 minutes of training (best epoch 65, val macro AUC 0.886). Lesion-grouped test split,
1,200 images: balanced accuracy 0.559 [BCa 95% CI 0.500, 0.617], macro AUC 0.904 [0.890, 0.916],
accuracy 0.684.

Paper's reported result (ImageNet weights, 224 px, random image-level split): for MobileNetV3Small
+ soft attention + metadata, accuracy 0.78, macro AUC 0.96, balanced accuracy 0.87 (Table A5); see
`ham10000_mobilenetv3small_sa`. This config is the from-scratch CPU floor, not a reproduction.

Why it differs from paper 001's recipe (`ham10000_soft_attention`): without ImageNet weights,
Adam(lr 1e-3, epsilon 0.1) left the loss flat for the first epochs, while lr 3e-4 with epsilon 1e-7
reached val macro AUC 0.81 in 3 epochs. The plateau schedule watches val macro AUC (the weighted
val loss rose while AUC still improved) and halves the rate after 6 epochs without gain. 128 px and
an in-memory cache of the decoded images keep an epoch near 30 s on 2 cores.
"""

from skinkeras.experiments.presets import ham10000_from_scratch_cpu


def get_config():
    return ham10000_from_scratch_cpu("MobileNetV3Small", description=__doc__, epochs=300, early_stopping_patience=30)
