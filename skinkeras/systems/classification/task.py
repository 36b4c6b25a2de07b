"""Registers the "classification" task (see `skinkeras.tasks`)."""

from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="classification",
    summary="backbone + head (+ metadata branch) softmax classifier (paper 001)",
    config=None,
    element='({"image": float32[H, W, 3] 0..255, "metadata": float32[F] (metadata models)}, one-hot float32[C])',
    serializable=("skinkeras.models", "skinkeras.preprocessing.scaling", "skinkeras.training.losses"),
    build_model=".model:build_model",
    make_dataset=".data:make_dataset",
    train=".train:train",
    predict=".evaluate:predict",
    score=".evaluate:score",
    predictor="skinkeras.export.predictor:RunPredictor",
    export="skinkeras.export.run_export:export_run",
))
