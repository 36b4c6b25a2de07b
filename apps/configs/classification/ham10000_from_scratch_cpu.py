"""MobileNetV3Small + soft attention + paper-001 metadata, trained from scratch on a 2-core CPU in an hour.

    skinkeras train ham10000_from_scratch_cpu --data-root ../shared/data/ham10000 --out runs/scratch
    skinkeras evaluate runs/scratch

`make train-ham10000 DATA=...` trains this config on a machine without a GPU. The recipe
(`skinkeras.experiments.presets.ham10000_cpu_recipe`, issue 19): 128 px, decoded images cached in
memory, Adam(lr 3e-4, epsilon 1e-7), balanced class weights, batch 32; 2 warmup epochs, then
cosine decay to 1e-6 over 52 epochs, the last 8 with BatchNormalization frozen; best.keras on val
macro AUC (here always the last epoch); the prior-adjusted decision rule (softmax / prior^tau, tau
fitted on val) stored in the run and applied by evaluate, predict and every export.

Budget in epochs, not minutes: 52 epochs on any machine. Measured 2026-12-07 on a 2-core AMD EPYC
(AVX2): 34.8 s/epoch on a quiet machine (36 epochs in 20.9 min), 38.0 s/epoch with the test suite
running beside it (52 epochs in 32.9 min of training). Issue 19's machine took 65 s/epoch with
this model: 52 epochs there are 56 min. The config before this one stopped on a 55-minute clock
after 32 epochs, a truncated run.

Result (runs/recipe52, seed 0, the lesion-grouped test split of the shared copy, 1,200 images of
lesions never seen in training): balanced accuracy 0.657 [BCa 95% CI 0.604, 0.697], melanoma
recall 0.570, macro AUC 0.918 [0.906, 0.928], accuracy 0.647 (decision rule tau 0.25). Issue 19's
goal is >= 0.65 / >= 0.60 / >= 0.92: balanced accuracy is met, melanoma recall and macro AUC are
not yet (both intervals include the goal).

Ablation: one change at a time, seed 0, the same split; `skinkeras evaluate RUN` on each; "rule
off" is the same predictions without the decision rule (metrics.json).

    run                                     epochs  bal. acc. [95% CI]     mel rec  macro AUC [95% CI]   rule off: bal. acc / mel
    recipe at 36 epochs                        36   0.651 [0.597, 0.695]   0.469   0.911 [0.898, 0.923]   0.653 / 0.453  (tau 0.05)
      + EMA of the weights (0.995)             36   0.649 [0.594, 0.694]   0.531   0.914 [0.900, 0.926]   0.649 / 0.531  (tau 0)
      + 16 epochs (this config)                52   0.657 [0.604, 0.697]   0.570   0.918 [0.906, 0.928]   0.629 / 0.570  (tau 0.25)
      peak lr 1e-3 instead of 3e-4             36   stopped after 9 epochs: val macro AUC 0.66-0.74 over epochs 3-9 vs 0.80-0.83
      36-crop test-time averaging (evaluate
        --multi-crop; 36x the inference)        36   0.645 [0.590, 0.687]   -       0.908 [0.895, 0.920]
      per-class factors fitted on val          36   val 0.616 -> 0.672, test 0.651 -> 0.638 (mel recall 0.47 -> 0.62): overfits
                                                    the small classes; not used
    the schedule before this recipe: plateau
      (halve after 6 epochs without val AUC
      gain), no warmup, no frozen BN           36   0.496 [0.449, 0.541]   0.250   0.875 [0.852, 0.890]   0.444 / 0.109  (tau 0.30)
    this config without the frozen-BN epochs   52   0.613 [0.555, 0.662]   0.461   0.908 [0.894, 0.919]   0.613 / 0.461  (tau 0)

So annealing is the lever: at the same 36 epochs the cosine schedule + frozen BN end is worth 15.5
points of balanced accuracy and 3.6 of macro AUC over the plateau schedule (which never lowered its
rate: val AUC kept creeping up), and the 8 frozen-BN epochs alone 4.4 points and 1.0 at 52 epochs
(they are also 1.5x faster per step, below). Without the rule the plateau run scores 0.444, the
issue's 0.44.

Issue 19's starting point (plateau schedule, a 55-minute clock, 32 epochs, 2,022-image test split of
another seed): 0.44 balanced accuracy, melanoma recall 0.12, macro AUC 0.88; with the prior rule
(tau 0.4) 0.52.

Where a training step goes (`skinkeras bench train --root ../shared/data/ham10000 --experiment
ham10000_from_scratch_cpu --image-size 128 --freeze-bn false true --jit-compile false true`, rows
measured side by side in one process): 174 ms per step of 32 images, input wait 0.8 % (the memory
cache keeps up); with BatchNormalization frozen 116 ms (1.50x faster: the batch statistics are a
third of the step on this CPU); XLA (`jit_compile=True`) 1,238 ms (7.1x slower on CPU, so Keras'
default of no XLA on CPUs stands). Separate runs (about +-10 % between processes): no soft-attention
head (GAP) 168 ms, no metadata branch 142 ms, 112 px 134 ms, 96 px 138 ms, 160 px 216 ms vs 156 ms
at 128 px, 192 px 332 ms: below 128 px the step stops shrinking (per-layer overheads), above it
grows with the pixels.

Paper 001's reported result (ImageNet weights, 224 px, random image-level split) for
MobileNetV3Small + soft attention + metadata: accuracy 0.78, macro AUC 0.96, balanced accuracy
0.87 (Table A5); see `ham10000_mobilenetv3small_sa`. This config is the from-scratch CPU floor,
not a reproduction; `ham10000_from_scratch_gpu` is the same recipe at paper scale.
"""

from skinkeras.experiments.presets import ham10000_cpu_recipe

EPOCHS = 52
FROZEN_BN_EPOCHS = 8


def get_config():
    return ham10000_cpu_recipe("MobileNetV3Small", description=__doc__, epochs=EPOCHS,
                               freeze_bn_epochs=FROZEN_BN_EPOCHS)
