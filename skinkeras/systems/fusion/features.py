"""The metadata vector of a fusion model: the shared encoding of age / sex / site plus one-hot
extra fields (derm7pt: elevation), each field only when the dataset has it.

    [age_normalised, age_missing] (field "age") + sex one-hot (female, male, unknown) (field "sex")
    + site one-hot over the dataset's site vocabulary (field "site") + one one-hot per extra field
    over the values seen in the training cases, with "unknown"

Age / sex / site go through `skinkeras.data.metadata.MetadataEncoding` (age statistics fitted on the
training cases), so the vector means what it means everywhere else in the project. The NumPy form
feeds training and the Python predictor, the TensorFlow form the SavedModel; both are tested equal.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"age": [float("nan")], "sex": ["male"], "site": ["back"], "elevation": ["flat"]})
    >>> vector = MetadataVector.fit(frame, ("sex", "elevation"), sites=("back",))
    >>> vector.feature_names
    ('sex_female', 'sex_male', 'sex_unknown', 'elevation_flat', 'elevation_unknown')
    >>> vector.encode_frame(frame).tolist()
    [[0.0, 1.0, 0.0, 1.0, 0.0]]
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from skinkeras.data.metadata import UNKNOWN, MetadataEncoding, _normalise_category
from skinkeras.errors import ConfigError

log = logging.getLogger(__name__)

BASE_FIELDS = ("age", "sex", "site")
_BASE_PREFIX = {"age": "age_", "sex": "sex_", "site": "site_"}


@dataclasses.dataclass(frozen=True)
class MetadataVector:
    """`encoding`: age / sex / site; `fields`: the fields used, in order; `extras`: field -> vocabulary."""

    encoding: MetadataEncoding
    fields: tuple[str, ...]
    extras: dict

    @classmethod
    def fit(cls, frame, fields, *, sites=None) -> "MetadataVector":
        """Fitted on a (training) samples frame; fields the frame lacks are left out, with a log line."""
        fields = tuple(str(f).strip().lower() for f in fields)
        missing = [f for f in fields if f not in frame.columns]
        if missing:
            log.info("metadata fields %s are not in the dataset: left out of the metadata vector", missing)
        fields = tuple(f for f in fields if f in frame.columns)
        if sites is None:
            sites = sorted({_normalise_category(s) for s in frame["site"]} | {UNKNOWN}) if "site" in frame else (UNKNOWN,)
        encoding = MetadataEncoding.fit(frame, sites=tuple(sites)) if "age" in frame else MetadataEncoding(sites=tuple(sites))
        extras = {f: tuple(sorted({_normalise_category(v) for v in frame[f]} - {UNKNOWN})) + (UNKNOWN,)
                  for f in fields if f not in BASE_FIELDS}
        return cls(encoding, fields, extras)

    @property
    def base_columns(self) -> list[int]:
        """Positions of the used age / sex / site features in the shared encoding."""
        prefixes = tuple(_BASE_PREFIX[f] for f in self.fields if f in BASE_FIELDS)
        return [k for k, name in enumerate(self.encoding.feature_names) if name.startswith(prefixes)] if prefixes else []

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = [self.encoding.feature_names[k] for k in self.base_columns]
        for field, vocabulary in self.extras.items():
            names += [f"{field}_{value}" for value in vocabulary]
        return tuple(names)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def sites(self) -> tuple[str, ...]:
        return self.encoding.sites

    def to_config(self) -> dict:
        return {"encoding": self.encoding.to_config(), "fields": list(self.fields),
                "extras": {k: list(v) for k, v in self.extras.items()}, "feature_names": list(self.feature_names)}

    @classmethod
    def from_config(cls, config: dict) -> "MetadataVector":
        return cls(MetadataEncoding.from_config(config["encoding"]), tuple(config["fields"]),
                   {k: tuple(v) for k, v in config["extras"].items()})

    def check_fields(self, values: dict) -> dict:
        """Extra field values of one case, normalised; a value outside the vocabulary is an error
        naming the valid ones (a typo is not silently "unknown")."""
        out = {}
        for field, vocabulary in self.extras.items():
            value = _normalise_category(values.get(field))
            if value not in vocabulary:
                raise ConfigError(f"--meta {field} must be one of: {', '.join(vocabulary)}. Received: {values.get(field)!r}")
            out[field] = value
        unknown = sorted(set(values) - set(self.extras))
        if unknown:
            raise ConfigError(f"--meta {unknown[0]}: not a metadata field of this model "
                              f"(it takes {', '.join(self.extras) or 'age, sex and site only'})")
        return out

    def encode_numpy(self, age, sex, site, extras: dict | None = None) -> np.ndarray:
        """float32[N, F] from 1-D age / sex / site and, per extra field, 1-D values."""
        base = self.encoding.encode_numpy(age, sex, site)[:, self.base_columns]
        parts = [base]
        extras = extras or {}
        for field, vocabulary in self.extras.items():
            values = [_normalise_category(v) for v in extras.get(field, [UNKNOWN] * len(base))]
            index = [vocabulary.index(v) if v in vocabulary else vocabulary.index(UNKNOWN) for v in values]
            parts.append(np.eye(len(vocabulary), dtype=np.float32)[index])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def encode_frame(self, frame) -> np.ndarray:
        extras = {f: frame[f].tolist() for f in self.extras if f in frame}
        age = frame["age"] if "age" in frame else np.full(len(frame), np.nan)
        sex = frame["sex"] if "sex" in frame else [UNKNOWN] * len(frame)
        site = frame["site"] if "site" in frame else [UNKNOWN] * len(frame)
        return self.encode_numpy(age, sex, site, extras)

    def encode_tf(self, age, sex, site, extras: dict):
        """The TensorFlow form of `encode_numpy`: `[B]` tensors -> float32[B, F]."""
        import tensorflow as tf

        from skinkeras.data.metadata import _one_hot_tf

        base = tf.gather(self.encoding.encode(age, sex, site), self.base_columns, axis=-1)
        parts = [base] + [_one_hot_tf(extras[field], list(vocabulary)) for field, vocabulary in self.extras.items()]
        return tf.concat(parts, axis=-1)
