"""The systems: one folder per task, each registering itself in its `task` module.

A folder here holds one task plug-in (`skinkeras.tasks.Task`): its config section, model
builder, data, trainer, evaluator halves (predictions, scores), predictor and exporter. The engine
finds every folder's `task.py` by itself; nothing else needs editing to add a system.
"""
