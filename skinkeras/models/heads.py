"""Classification heads: a backbone feature map -> one feature vector (before any metadata and
the final Dense).

- "gap": global average pooling of the final feature map.
- "se": squeeze-and-excitation on the final feature map, then GAP (paper 002).
- "cbam": CBAM on the final feature map, then GAP (paper 003).
- "soft_attention": the SA module at the backbone's insertion point, flattened (paper 001).

`HEADS` maps a head name to (builder, which backbone feature point it needs).
"""

from __future__ import annotations

from keras import layers

from skinkeras.models.cbam import CBAM
from skinkeras.models.soft_attention import soft_attention_module
from skinkeras.models.squeeze_excitation import squeeze_excite


def gap_head(features, *, dtype=None, name: str = "head", **_):
    return layers.GlobalAveragePooling2D(dtype=dtype, name=f"{name}_gap")(features)


def se_head(features, *, se_ratio: int = 16, dtype=None, name: str = "head", **_):
    x = squeeze_excite(features, ratio=se_ratio, dtype=dtype, name=f"{name}_se")
    return layers.GlobalAveragePooling2D(dtype=dtype, name=f"{name}_gap")(x)


def cbam_head(features, *, cbam_ratio: int = 16, dtype=None, name: str = "head", **_):
    x = CBAM(ratio=cbam_ratio, dtype=dtype, name=f"{name}_cbam")(features)
    return layers.GlobalAveragePooling2D(dtype=dtype, name=f"{name}_gap")(x)


def soft_attention_head(
    features,
    *,
    attention_heads: int = 16,
    attention_gamma_init: float | None = 0.01,
    attention_dropout: float = 0.5,
    dtype=None,
    name: str = "head",
    **_,
):
    return soft_attention_module(
        features,
        num_heads=attention_heads,
        gamma_init=attention_gamma_init,
        dropout=attention_dropout,
        dtype=dtype,
        name=f"{name}_sa",
    )


HEADS = {
    "gap": (gap_head, "final"),
    "se": (se_head, "final"),
    "cbam": (cbam_head, "final"),
    "soft_attention": (soft_attention_head, "attention"),
}


def head_names() -> list[str]:
    return list(HEADS)
