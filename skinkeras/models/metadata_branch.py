"""Metadata branches: encoded age / sex / site vector -> features concatenated with the image's.

- "paper001" (paper 001's reference code): one Dense(4096, relu), no BN or dropout.
- "gessert" (paper 000 / Gessert et al. 2020, also described in paper 001): two blocks of
  Dense(256) -> BatchNormalization -> ReLU -> Dropout(0.4).

The input is the float vector of `skinkeras.data.metadata.MetadataEncoding` (20 features for
HAM10000; the paper-001 reference had 21). Age normalisation happens in the encoding, not here, so
the paper-001 model has 3 parameters fewer than the reference's (its age Normalization layer).
"""

from __future__ import annotations

from keras import layers

METADATA_BRANCHES = ("paper001", "gessert")


def metadata_branch(inputs, kind: str = "paper001", *, dtype=None, name: str = "metadata"):
    """Returns the metadata feature vector for `inputs` (B, F).

    Example:
        >>> x = keras.Input((20,))
        >>> tuple(metadata_branch(x, "gessert").shape)
        (None, 256)
    """
    if kind == "paper001":
        return layers.Dense(4096, activation="relu", dtype=dtype, name=f"{name}_dense")(inputs)
    if kind == "gessert":
        x = inputs
        for i in (1, 2):
            x = layers.Dense(256, dtype=dtype, name=f"{name}_dense{i}")(x)
            x = layers.BatchNormalization(dtype=dtype, name=f"{name}_bn{i}")(x)
            x = layers.ReLU(dtype=dtype, name=f"{name}_relu{i}")(x)
            x = layers.Dropout(0.4, dtype=dtype, name=f"{name}_dropout{i}")(x)
        return x
    raise ValueError(f"Unknown metadata branch. Expected one of {METADATA_BRANCHES}. Received: kind={kind!r}")
