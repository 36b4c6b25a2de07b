"""The shared model test harness (after keras-hub's `tests/test_case.py`).

One place that checks what every model in the zoo must do: build, symbolic and eager call, one
training step, a `.keras` save/load round trip with no `custom_objects` giving the same outputs,
and float32 outputs under mixed precision. Tests feed tiny inputs and build with weights=None.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def random_inputs(model: keras.Model, batch_size: int = 2, seed: int = 0):
    """Random inputs matching the model's inputs: raw 0..255 images, standard-normal vectors."""
    rng = np.random.default_rng(seed)

    def one(tensor):
        shape = (batch_size, *tensor.shape[1:])
        if len(shape) == 4 and shape[-1] == 3:
            return rng.uniform(0.0, 255.0, size=shape).astype("float32")
        return rng.standard_normal(shape).astype("float32")

    if isinstance(model.input, dict):
        return {key: one(tensor) for key, tensor in model.input.items()}
    if isinstance(model.input, (list, tuple)):
        return [one(tensor) for tensor in model.input]
    return one(model.input)


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def check_symbolic_call(model: keras.Model):
    """Calling the model on fresh symbolic inputs gives the declared output shapes."""
    symbolic = keras.tree.map_structure(lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype), model.input)
    outputs = model(symbolic)
    for got, want in zip(_as_list(outputs), _as_list(model.output)):
        assert tuple(got.shape) == tuple(want.shape), (got.shape, want.shape)
    return outputs


def check_eager_call(model: keras.Model, inputs, *, expect_dtype: str | None = "float32", probabilities=True):
    """An eager inference call gives finite outputs of the declared shape (and dtype)."""
    outputs = model(inputs, training=False)
    arrays = [keras.ops.convert_to_numpy(o) for o in _as_list(outputs)]
    for array, declared, tensor in zip(arrays, _as_list(model.output), _as_list(outputs)):
        assert array.shape[1:] == tuple(declared.shape[1:]), (array.shape, declared.shape)
        assert np.all(np.isfinite(array.astype("float32"))), f"{model.name}: non-finite outputs"
        if expect_dtype is not None:
            assert keras.backend.standardize_dtype(tensor.dtype) == expect_dtype, tensor.dtype
        if probabilities:
            np.testing.assert_allclose(array.astype("float32").sum(axis=-1), 1.0, atol=1e-3)
    return arrays


def check_training_step(model: keras.Model, inputs, targets=None, *, loss="categorical_crossentropy"):
    """One optimizer step on the batch gives a finite loss and changes the trainable weights."""
    if targets is None:
        num_classes = int(model.output.shape[-1])
        batch = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
        targets = keras.utils.to_categorical(np.arange(batch) % num_classes, num_classes)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    assert before, f"{model.name} has no trainable weights"
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=loss, jit_compile=False)
    result = model.train_on_batch(inputs, targets, return_dict=True)
    assert np.isfinite(result["loss"]), f"{model.name}: loss {result['loss']}"
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    changed = sum(not np.array_equal(b, a) for b, a in zip(before, after))
    assert changed > 0, f"{model.name}: a training step changed no weight"
    return result


def check_save_load(model: keras.Model, inputs, directory: Path, *, atol: float = 1e-5):
    """`.keras` round trip with no custom_objects: same class of model, same outputs."""
    path = Path(directory) / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: every layer must be registered
    want = [keras.ops.convert_to_numpy(o) for o in _as_list(model(inputs, training=False))]
    got = [keras.ops.convert_to_numpy(o) for o in _as_list(loaded(inputs, training=False))]
    assert len(want) == len(got)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)
    assert loaded.count_params() == model.count_params()
    path.unlink()
    return loaded


def check_mixed_precision(build, inputs, *, policies=MIXED_POLICIES):
    """`build(dtype)` under each mixed policy: outputs stay float32 and finite; the global policy
    is untouched (builders plumb the dtype)."""
    before = keras.config.dtype_policy().name
    for policy in policies:
        model = build(policy)
        assert keras.config.dtype_policy().name == before, "builder changed the global dtype policy"
        check_eager_call(model, inputs, expect_dtype="float32")


def run_model_checks(model: keras.Model, inputs, directory: Path, *, train=True, save=True):
    """Symbolic + eager call, then (optionally) one training step and the save/load round trip."""
    check_symbolic_call(model)
    check_eager_call(model, inputs)
    if train:
        check_training_step(model, inputs)
    if save:
        check_save_load(model, inputs, directory)
