"""Paper 002's two-stage ISIC 2017 pipeline: lesion crop (U-Net), five SE-CNNs, ensembles.

`pipeline.train_two_stage` trains it into a run directory; `evaluation.evaluate_two_stage_run`
reports every single model and every ensemble, with and without segmentation; `ensembles` holds
the combiners (averaging, max, the 423-parameter locally connected head, scikit-learn stackers);
`radar` draws the comparison plot. Heavy imports happen inside the functions.
"""
