"""The late-fusion network of paper 004 (Figure 1), one builder for every row of Table 1.

    dermoscopic -> InputScaling -> backbone -> GAP  ("dsc_tower")  ┐
    clinical    -> InputScaling -> backbone -> GAP  ("macro_tower")├ concat -> [Dense(1024, ReLU) x 2]
    metadata (float32[F])                                           ┘         -> Dense(C) softmax

Each image tower is a nested model with its own name, so two towers of the same backbone (same
inner layer names) live in one model, save, load and export; `shared=True` builds one tower
("shared_tower") and calls it on both images (one set of weights, the paper's comparison). A row
without a modality has no tower or input for it; the embedding network is optional (the table's
"no embedding network" rows: concat -> softmax). The softmax is float32 under mixed precision.
"""

from __future__ import annotations

import keras
from keras import layers

from skinkeras.systems.fusion.data import INPUTS


def image_tower(name: str, backbone: str, image_size: int, *, weights=None, dtype=None) -> keras.Model:
    """uint8-valued float image [S, S, 3] -> the backbone's pooled feature vector (a nested model)."""
    from skinkeras.models.backbones import build_backbone, get_backbone_spec
    from skinkeras.preprocessing.scaling import InputScaling

    spec = get_backbone_spec(backbone)
    network = build_backbone(backbone, (image_size, image_size, 3), weights, dtype=dtype)
    image = keras.Input((image_size, image_size, 3), name=f"{name}_image")
    x = InputScaling(spec.scaling, dtype=dtype, name=f"{name}_scaling")(image)
    x = network(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype, name=f"{name}_gap")(x)
    return keras.Model(image, x, name=name)


def build_fusion_model(row, *, num_classes: int, backbone: str = "ResNet50", image_size: int = 224,
                       metadata_features: int = 0, embedding_units=(1024, 1024), dropout: float = 0.0,
                       shared: bool = False, weights=None, dtype=None) -> keras.Model:
    """The model of `row` (a `rows.Row`); inputs named "dermoscopic", "clinical", "metadata" as the
    row uses them, output "predictions" float32[C]. `shared` (or `row.shared`): one tower for both images."""
    if row.kind != "network":
        raise ValueError(f"row {row.id} is not a network row ({row.kind})")
    if row.metadata and metadata_features < 1:
        raise ValueError(f"row {row.id} reads metadata, and the metadata vector is empty")
    inputs, vectors = {}, []
    shared = shared or row.shared
    towers = {}
    for modality in row.images:
        image = keras.Input((image_size, image_size, 3), name=INPUTS[modality])
        inputs[INPUTS[modality]] = image
        key = "shared" if shared and len(row.images) > 1 else modality
        if key not in towers:
            towers[key] = image_tower(f"{key}_tower", backbone, image_size, weights=weights, dtype=dtype)
        vectors.append(towers[key](image))
    if row.metadata:
        inputs["metadata"] = keras.Input((int(metadata_features),), name="metadata")
        vectors.append(layers.Activation("linear", dtype=dtype, name="metadata_vector")(inputs["metadata"]))
    x = vectors[0] if len(vectors) == 1 else layers.Concatenate(dtype=dtype, name="fusion_concat")(vectors)
    if row.embedding:
        for index, units in enumerate(embedding_units, start=1):
            x = layers.Dense(int(units), activation="relu", dtype=dtype, name=f"embedding_dense{index}")(x)
    if dropout:
        x = layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"fusion_{row.id}")
