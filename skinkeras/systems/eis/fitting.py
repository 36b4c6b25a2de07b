"""One Keras cell of the grid: build a row's model, choose its epochs on the validation fold, predict.

Model selection watches the validation AUC after every epoch, scored cheaply and identically for
every row (one centre crop, one measurement order); evaluation of the left-out fold uses the full
protocol (`eis.eval_crops` crops, `eis.eval_permutations` orders). With `eis.protocol="paper"` the
model is rebuilt and trained on the four training folds for the chosen number of epochs.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from skinkeras.systems.eis import data as eis_data

log = logging.getLogger(__name__)


def schedule(spec, config) -> tuple[int, float, int]:
    """(epochs, learning rate, batch size) of a row."""
    e = config.eis
    if spec.kind == "joint":
        return e.joint_epochs or e.cnn_epochs, e.joint_learning_rate or e.cnn_learning_rate, e.cnn_batch_size
    if spec.uses_images:
        return e.cnn_epochs, e.cnn_learning_rate, e.cnn_batch_size
    return e.eis_epochs, e.eis_learning_rate, e.eis_batch_size


def backbone_of(spec, config) -> str:
    return {"dense": config.eis.dense_backbone, "serx": config.eis.serx_backbone}[spec.cnn]


def build_models(spec, config, stats, dtype):
    """The row's `EISModels(train, infer)` with EIS standardisation `stats` = (mean, variance)."""
    from skinkeras.systems.eis import model as builders

    e = config.eis
    mean, variance = stats
    weights = config.model.weights or None
    if spec.kind == "fcnn":
        return builders.build_fcnn(mean, variance, hidden=tuple(e.fcnn_units), max_measurements=e.max_measurements,
                                   dtype=dtype)
    if spec.kind == "gru":
        return builders.build_gru(spec.pooling, mean, variance, units=e.gru_units, hidden=e.hidden_units,
                                  max_measurements=e.max_measurements, dtype=dtype, embedding=e.gru_embedding)
    if spec.kind == "cnn":
        return builders.build_cnn(backbone_of(spec, config), e.crop_size, weights=weights, dtype=dtype)
    if spec.kind == "joint":
        return builders.build_joint(spec.fusion, backbone_of(spec, config), e.crop_size, mean, variance,
                                    weights=weights, units=e.gru_units, hidden=e.hidden_units,
                                    fc_units=e.joint_fc_units, max_measurements=e.max_measurements, dtype=dtype,
                                    embedding=e.gru_embedding)
    raise ValueError(f"not a Keras row: {spec.id} ({spec.kind})")


def output_names(model) -> list[str] | None:
    """The output names of a model with several outputs (the CA joint model's two paths), else None:
    each gets the loss and the one-hot target."""
    if isinstance(model.output, (dict, list, tuple)) and len(model.output) > 1:
        return list(model.output_names)
    return None


def compile_models(models, config, learning_rate: float, dtype: str) -> None:
    from skinkeras.training.objectives import optimizer

    train = models.train
    outputs = output_names(train)
    loss = dict.fromkeys(outputs, "categorical_crossentropy") if outputs else "categorical_crossentropy"
    train.compile(optimizer=optimizer(dataclasses.replace(config.train, learning_rate=learning_rate), dtype),
                  loss=loss, jit_compile=False)


def _training_data(spec, config, arrays, rows, batch_size: int, seed: int, target_names):
    if spec.kind == "fcnn":
        return eis_data.measurement_dataset(arrays, rows, batch_size=batch_size, seed=seed)
    return eis_data.training_dataset(arrays, rows, batch_size=batch_size, max_measurements=config.eis.max_measurements,
                                     use_images=spec.uses_images, use_eis=spec.uses_eis, crop_size=config.eis.crop_size,
                                     target_names=target_names, seed=seed)


def _predict(models, spec, config, arrays, rows, *, full: bool, seed: int) -> np.ndarray:
    e = config.eis
    return eis_data.predict_lesions(
        models.infer, arrays, rows, use_images=spec.uses_images, use_eis=spec.uses_eis, crop_size=e.crop_size,
        eval_crops=e.eval_crops if full else 1, eval_permutations=e.eval_permutations if full else 1,
        max_measurements=e.max_measurements, seed=seed)


def _train_epochs(models, spec, config, arrays, rows, epochs: int, batch_size: int, seed: int, on_epoch=None):
    from skinkeras.engine.callbacks import StopOnNonFiniteLoss

    train = models.train
    names = output_names(train)
    losses = []
    for epoch in range(epochs):
        data = _training_data(spec, config, arrays, rows, batch_size, seed + epoch, names)
        history = train.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[StopOnNonFiniteLoss()])
        losses.append(float(history.history["loss"][-1]))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses


def binary_auc(y, score) -> float:
    """ROC AUC, NaN when `y` holds one class only."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(np.asarray(y).tolist())) == 2 else float("nan")


def start_from_members(models, paths) -> list[str]:
    """Copies into `models.train` the weights of every same-named layer of the member models at
    `paths` (the GRU path from the state-max GRU, the image path from the CNN; not the EIS
    standardisation, fitted on this stage's own rows, nor the output layers). Returns the layers set."""
    from skinkeras.saving import load_model

    copied = []
    for path in paths:
        member = load_model(path, compile=False)
        for layer in member.layers:
            if layer.name == "eis_normalization" or not layer.weights:
                continue
            try:
                target = models.train.get_layer(layer.name)
            except ValueError:
                continue
            source = layer.get_weights()
            if [w.shape for w in target.get_weights()] == [w.shape for w in source]:
                target.set_weights(source)
                copied.append(layer.name)
    return copied


def fit_keras_cell(spec, config, arrays, train3, val, train4, test, cell, *, dtype: str, start_from=()):
    """Trains `spec` for one fold; returns (test probabilities (n, 2), selection record).
    `start_from`: member model files whose same-named layers initialise the model (`eis.joint_init`)."""
    import keras

    epochs, learning_rate, batch_size = schedule(spec, config)
    seed = config.train.seed
    models = build_models(spec, config, eis_data.feature_stats(arrays, train3), dtype)
    copied = start_from_members(models, start_from)
    compile_models(models, config, learning_rate, dtype)
    history, best = [], {"auc": -np.inf, "epoch": 0, "weights": None}

    def validate(epoch, loss):
        auc = binary_auc(arrays.labels[val], _predict(models, spec, config, arrays, val, full=False, seed=seed)[:, 1])
        history.append({"epoch": epoch + 1, "loss": loss, "val_auc": auc})
        if auc > best["auc"]:
            best.update(auc=auc, epoch=epoch + 1, weights=models.train.get_weights())

    _train_epochs(models, spec, config, arrays, train3, epochs, batch_size, seed, on_epoch=validate)
    chosen = max(1, best["epoch"])
    if config.eis.protocol == "paper":
        keras.utils.set_random_seed(seed + 7919)
        models = build_models(spec, config, eis_data.feature_stats(arrays, train4), dtype)
        start_from_members(models, start_from)
        compile_models(models, config, learning_rate, dtype)
        _train_epochs(models, spec, config, arrays, train4, chosen, batch_size, seed)
    elif best["weights"] is not None:
        models.train.set_weights(best["weights"])
    models.infer.save(cell.infer_model)
    probabilities = _predict(models, spec, config, arrays, test, full=True, seed=seed + 1)
    keras.backend.clear_session(free_memory=True)
    return probabilities, {
        "epochs_trained_for_selection": epochs,
        "chosen_epochs": chosen,
        "best_val_auc": None if not np.isfinite(best["auc"]) else float(best["auc"]),
        "protocol": config.eis.protocol,
        "started_from": [str(p) for p in start_from],
        "layers_started_from_members": copied,
        "history": history,
        "summary": f"{chosen} of {epochs} epochs (val AUC {best['auc']:.3f})",
    }
