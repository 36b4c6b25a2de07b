"""Paper 002's two-stage ISIC 2017 pipeline (task "two_stage"): lesion crop (U-Net), five SE-CNNs,
ensembles; deployable on new images (`predict`, one SavedModel with segmentation and crop inside).

`train.train_two_stage` trains it into a run directory (`run_files.TwoStageRun`); `evaluate` writes
every member's and every ensemble's predictions and scores them (`report`, `radar`); `ensembling`
fits the combiners on the validation predictions; `predict` and `export` apply the deployed one.
Heavy imports happen inside the functions.
"""
