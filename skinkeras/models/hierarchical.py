"""Paper 003's two models (Barata & Santiago, "How Important Is Each Dermoscopy Image?", section 4.1):
the flat CBAM classifier and the hierarchical classifier with level-conditioned CBAM and an LSTM.

- Flat: backbone (VGG16 in the paper) -> CBAM on the last (max-pooled) feature map -> GAP ->
  dropout 0.5 -> Dense(classes, softmax). `build_flat_cbam` composes it from `build_classifier`'s
  "cbam" head, so it is the same model a `ClassifierConfig(head="cbam", dropout=0.5)` gives.
- Hierarchical: backbone -> one CBAM per decision level (level-conditioned attention, below) ->
  GAP per level -> an LSTM over the levels -> at step l, one softmax per taxonomy node of level l
  over that node's children. The 7-class probabilities are the products of the probabilities
  along each class's path (p(df) = p(non_mel) p(benign | non_mel) p(df | benign)), so they sum
  to 1 by construction.

Level conditioning: one set of CBAM parameters per level (L `CBAM` layers named
`level{l}_cbam`, all on the same backbone feature map). The paper only says the channel and
spatial attention "change according to the hierarchic decision level"; separate parameters are
the most direct reading, reuse the tested `CBAM` layer unchanged, serialize for free, and cost
little (about 33k parameters per level on VGG16's 512 channels at ratio 16, against its 14.7M).
The LSTM input at step l is the level-l attended GAP vector alone: the paper's optional
previous-decision embedding (teacher forcing) is not implemented.

Training: the model has one output per head (`Taxonomy.head_names`, e.g. "level2_melanocytic")
plus "probabilities". `hierarchical_losses` gives categorical cross-entropy on the heads only
("probabilities" gets no loss), and `Taxonomy.targets(labels)` the per-head one-hot targets and
per-head sample weights (1 on the sample's path, 0 off it), so

    model.compile(optimizer, loss=hierarchical_losses(taxonomy))
    targets, weights = taxonomy.targets(labels)
    model.fit(x, targets, sample_weight=weights)

trains with the paper's equation 10 (the sum over the levels a sample has of the cross-entropy of
its correct child), averaged over the batch. `inference_model` gives the single-output
(7-class probabilities) model to export.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from skinkeras.models.backbones import build_backbone, get_backbone_spec
from skinkeras.models.cbam import CBAM
from skinkeras.models.classifier import ClassifierConfig, build_classifier
from skinkeras.preprocessing.scaling import InputScaling

PROBABILITIES = "probabilities"

# `skinkeras.data.ham10000.CLASS_NAMES` (a test checks they agree; not imported, to keep the model
# zoo independent of the data package).
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


# ---- taxonomy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaxonomyNode:
    """A node of a class taxonomy: a leaf is a class (its name is the class name).

    Example:
        >>> TaxonomyNode("melanocytic", (TaxonomyNode("nv"), TaxonomyNode("mel"))).classes
        ('nv', 'mel')
    """

    name: str
    children: tuple["TaxonomyNode", ...] = ()

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def classes(self) -> tuple[str, ...]:
        if self.is_leaf:
            return (self.name,)
        return tuple(c for child in self.children for c in child.classes)


@dataclass(frozen=True)
class HeadSpec:
    """One decision: a softmax over the children of an inner node.

    Args:
        name: the model output's name, `f"level{level}_{node}"`.
        node: the inner node's name.
        level: 1 for the root's decision, 2 for its children's, ...
        children: names of the node's children, in the softmax's order.
    """

    name: str
    node: str
    level: int
    children: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    """A class hierarchy over a dataset's classes, and the heads, paths and targets it implies.

    Args:
        root: the root node; its leaves must be exactly `class_names`, each once.
        class_names: the dataset's class order (the order of the "probabilities" output).

    Example:
        >>> [h.name for h in HAM10000_TAXONOMY.heads]
        ['level1_lesion', 'level2_melanocytic', 'level2_non_melanocytic', 'level3_benign', 'level3_malignant']
        >>> HAM10000_TAXONOMY.paths[HAM10000_CLASSES.index("df")]
        ((0, 1), (2, 0), (3, 1))
    """

    root: TaxonomyNode
    class_names: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        leaves = self.root.classes
        if sorted(leaves) != sorted(self.class_names) or len(set(leaves)) != len(leaves):
            raise ValueError(
                f"The taxonomy's leaves must be the class names, each once. Received: leaves={leaves}, "
                f"class_names={self.class_names}"
            )
        names, stack = [], [self.root]
        while stack:
            node = stack.pop()
            names.append(node.name)
            if len(node.children) == 1:
                raise ValueError(f"An inner node needs at least 2 children. Received: node={node.name!r}")
            stack.extend(node.children)
        if len(set(names)) != len(names):
            raise ValueError(f"Node names must be unique. Received: names={sorted(names)}")

    @property
    def heads(self) -> tuple[HeadSpec, ...]:
        """The inner nodes, breadth first (level by level, children in order)."""
        heads, frontier, level = [], [self.root], 1
        while frontier:
            inner = [node for node in frontier if not node.is_leaf]
            heads.extend(
                HeadSpec(f"level{level}_{node.name}", node.name, level, tuple(c.name for c in node.children))
                for node in inner
            )
            frontier = [child for node in inner for child in node.children]
            level += 1
        return tuple(heads)

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(head.name for head in self.heads)

    @property
    def num_levels(self) -> int:
        return max(head.level for head in self.heads)

    @property
    def paths(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per class (in `class_names` order): the (head index, child index) decisions from the
        root to the class. Its length is the number of levels the class has."""
        index = {head.node: i for i, head in enumerate(self.heads)}
        found = {}

        def walk(node, path):
            if node.is_leaf:
                found[node.name] = tuple(path)
                return
            for position, child in enumerate(node.children):
                walk(child, [*path, (index[node.name], position)])

        walk(self.root, [])
        return tuple(found[name] for name in self.class_names)

    def targets(self, labels) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Integer labels `(N,)` -> (targets, sample_weight), two dicts keyed by head name:
        one-hot targets `(N, len(children))` float32 (all zero off the sample's path) and weights
        `(N,)` float32 (1 on the sample's path, 0 off it). For `model.fit(x, targets,
        sample_weight=weights)` with `hierarchical_losses`."""
        labels = np.asarray(labels).reshape(-1)
        if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                            or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must be integers in [0, {len(self.class_names)}). Received: labels={labels[:10]}"
            )
        heads = self.heads
        targets = {h.name: np.zeros((len(labels), len(h.children)), np.float32) for h in heads}
        weights = {h.name: np.zeros((len(labels),), np.float32) for h in heads}
        paths = self.paths
        for row, label in enumerate(labels):
            for head_index, child in paths[int(label)]:
                name = heads[head_index].name
                targets[name][row, child] = 1.0
                weights[name][row] = 1.0
        return targets, weights

    def class_probabilities(self, head_outputs: dict) -> np.ndarray:
        """NumPy oracle of the "probabilities" output: products along each class's path."""
        heads = self.heads
        columns = []
        for path in self.paths:
            p = 1.0
            for head_index, child in path:
                p = p * np.asarray(head_outputs[heads[head_index].name], np.float64)[:, child]
            columns.append(p)
        return np.stack(columns, axis=-1).astype(np.float32)


HAM10000_TAXONOMY = Taxonomy(
    TaxonomyNode("lesion", (
        TaxonomyNode("melanocytic", (TaxonomyNode("nv"), TaxonomyNode("mel"))),
        TaxonomyNode("non_melanocytic", (
            TaxonomyNode("benign", (TaxonomyNode("bkl"), TaxonomyNode("df"), TaxonomyNode("vasc"))),
            TaxonomyNode("malignant", (TaxonomyNode("bcc"), TaxonomyNode("akiec"))),
        )),
    )),
    HAM10000_CLASSES,
)


# ---- layers -------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="skinkeras")
class HierarchyProbabilities(layers.Layer):
    """Class probabilities from per-node softmaxes: p(class) = product of the path's probabilities.

    Args:
        paths: per output class, its (head index, child index) decisions from the root
            (`Taxonomy.paths`).

    Takes the list of head softmaxes in head order; returns `(B, len(paths))`, computed in
    float32 whatever the dtype policy. If each head sums to 1, so does the output.

    Example:
        >>> layer = HierarchyProbabilities([[(0, 0)], [(0, 1), (1, 0)], [(0, 1), (1, 1)]])
        >>> [round(float(v), 2) for v in layer([keras.ops.array([[0.5, 0.5]]),
        ...                                     keras.ops.array([[0.2, 0.8]])])[0]]
        [0.5, 0.1, 0.4]
    """

    def __init__(self, paths, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.paths = [[(int(h), int(c)) for h, c in path] for path in paths]
        if not self.paths or any(not path for path in self.paths):
            raise ValueError(f"paths must be non-empty lists of (head, child) pairs. Received: paths={paths}")

    def call(self, head_outputs):
        heads = [ops.cast(h, "float32") for h in head_outputs]
        columns = []
        for path in self.paths:
            p = heads[path[0][0]][:, path[0][1]]
            for head_index, child in path[1:]:
                p = p * heads[head_index][:, child]
            columns.append(p)
        return ops.stack(columns, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.paths))

    def get_config(self):
        return {**super().get_config(), "paths": [[list(step) for step in path] for path in self.paths]}


# ---- builders -----------------------------------------------------------------------------------
def build_flat_cbam(
    backbone: str = "VGG16",
    num_classes: int = 7,
    *,
    image_size: int | None = None,
    weights: str | None = None,
    cbam_ratio: int = 16,
    dropout: float = 0.5,
    trainable_backbone: bool = True,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """Paper 003's flat model: backbone -> CBAM -> GAP -> dropout -> Dense(num_classes, softmax).

    For VGG16 the backbone's final feature map (`include_top=False`) is the output of the last
    max-pooling layer, where the paper puts the CBAM. Inputs `{"image": raw 0..255}`; output
    float32 probabilities. The spatial map of its CBAM (`head_cbam`) is what
    `skinkeras.explain.heatmap` shows.

    Example:
        >>> model = build_flat_cbam("TinyCNN", 7, image_size=32)
    """
    config = ClassifierConfig(
        backbone, "cbam", num_classes=num_classes, image_size=image_size, weights=weights,
        cbam_ratio=cbam_ratio, dropout=dropout, trainable_backbone=trainable_backbone,
    )
    return build_classifier(config, dtype=dtype, name=name or f"{backbone.lower()}_flat_cbam")


def build_hierarchical(
    backbone: str = "VGG16",
    taxonomy: Taxonomy = HAM10000_TAXONOMY,
    *,
    image_size: int | None = None,
    weights: str | None = None,
    cbam_ratio: int = 16,
    lstm_units: int = 256,
    dropout: float = 0.5,
    trainable_backbone: bool = True,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """Paper 003's hierarchical model (module docstring): per-level CBAM + GAP, an LSTM over the
    levels, one softmax per taxonomy node, and the class probabilities from the path products.

    Args:
        backbone: a backbone registry name (VGG16 in the paper).
        taxonomy: the class hierarchy (`HAM10000_TAXONOMY`).
        image_size: square input size; None = the backbone's default.
        weights: backbone weights (None, "imagenet" or a weights file).
        cbam_ratio: reduction ratio of each level's CBAM channel MLP.
        lstm_units: LSTM width (the paper does not give it).
        dropout: dropout on the LSTM's inputs and outputs (the paper: 0.5 "in several layers").
        trainable_backbone: False freezes the backbone.
        dtype: dtype policy name, or None (the current global policy). Every output is float32.

    Returns a model with inputs `{"image": raw 0..255}` and a dict of outputs: one per head
    (`taxonomy.head_names`) and "probabilities" `(B, len(taxonomy.class_names))`.

    Example:
        >>> model = build_hierarchical("TinyCNN", image_size=32, lstm_units=8)
        >>> sorted(model.output)[-1]
        'probabilities'
    """
    if int(lstm_units) < 1:
        raise ValueError(f"lstm_units must be positive. Received: lstm_units={lstm_units}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    spec = get_backbone_spec(backbone)
    size = image_size or spec.default_size
    features_model = build_backbone(backbone, (size, size, 3), weights, features="final", dtype=dtype)
    features_model.trainable = trainable_backbone
    levels = taxonomy.num_levels

    image = keras.Input((size, size, 3), name="image")
    x = InputScaling(spec.scaling, dtype=dtype, name="input_scaling")(image)
    features = features_model(x)
    channels = int(features.shape[-1])
    steps = []
    for level in range(1, levels + 1):
        attended = CBAM(ratio=cbam_ratio, dtype=dtype, name=f"level{level}_cbam")(features)
        vector = layers.GlobalAveragePooling2D(dtype=dtype, name=f"level{level}_gap")(attended)
        steps.append(layers.Reshape((1, channels), dtype=dtype, name=f"level{level}_step")(vector))
    sequence = steps[0] if levels == 1 else layers.Concatenate(axis=1, dtype=dtype, name="levels")(steps)
    if dropout:
        sequence = layers.Dropout(float(dropout), dtype=dtype, name="levels_dropout")(sequence)
    states = layers.LSTM(int(lstm_units), return_sequences=True, dtype=dtype, name="level_lstm")(sequence)
    if dropout:
        states = layers.Dropout(float(dropout), dtype=dtype, name="lstm_dropout")(states)
    level_states = [
        layers.Flatten(dtype=dtype, name=f"level{level}_state")(
            layers.Cropping1D((level - 1, levels - level), dtype=dtype, name=f"level{level}_crop")(states)
        )
        for level in range(1, levels + 1)
    ]
    outputs = {
        head.name: layers.Dense(len(head.children), activation="softmax", dtype="float32", name=head.name)(
            level_states[head.level - 1]
        )
        for head in taxonomy.heads
    }
    outputs[PROBABILITIES] = HierarchyProbabilities(taxonomy.paths, name=PROBABILITIES)(
        [outputs[head.name] for head in taxonomy.heads]
    )
    return keras.Model({"image": image}, outputs, name=name or f"{backbone.lower()}_hierarchical")


def hierarchical_losses(taxonomy: Taxonomy = HAM10000_TAXONOMY) -> dict[str, str]:
    """`compile(loss=...)` for `build_hierarchical`: cross-entropy on every head, none on
    "probabilities" (it is a function of the heads)."""
    return {name: "categorical_crossentropy" for name in taxonomy.head_names}


def inference_model(model: keras.Model) -> keras.Model:
    """The single-output model (inputs -> "probabilities") sharing `model`'s layers and weights:
    what to evaluate, serve and export (`model.export(path, format="tf_saved_model")`)."""
    if not isinstance(model.output, dict) or PROBABILITIES not in model.output:
        raise ValueError(
            f"Expected a model from build_hierarchical with a {PROBABILITIES!r} output. "
            f"Received: model={model.name!r}"
        )
    return keras.Model(model.input, model.output[PROBABILITIES], name=f"{model.name}_inference")


def decision_depths(model: keras.Model) -> tuple[int, ...] | None:
    """Per output class, how many decision levels lead to it (from the model's
    `HierarchyProbabilities` layer); None for a model without one."""
    for layer in model.layers:
        if isinstance(layer, HierarchyProbabilities):
            return tuple(len(path) for path in layer.paths)
    return None
