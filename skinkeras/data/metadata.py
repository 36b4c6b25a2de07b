"""Patient metadata (age, sex, anatomical site) as a float vector, in TensorFlow ops.

The encoding follows Gessert et al. 2018/2020 (cited by paper 000) and the soft-attention reference
(paper 001): numbers are normalised, categories one-hot encoded, and a missing value is explicit
(age: 0 plus a "missing" flag; sex / site: their own "unknown" category). During training each
property is independently set missing with p = 0.1 (Gessert), so the model learns to cope with
the missing values it will meet at test time.

    [age_normalised, age_missing, sex one-hot (female, male, unknown), site one-hot (sites)]

With the HAM10000 site vocabulary (15 sites including "unknown") that is 2 + 3 + 15 = 20 features.
`dx_type` is never an input: it is recorded after the diagnosis and leaks the label.

`MetadataEncoding.encode` works on tensors (eagerly, inside `Dataset.map`, in a SavedModel
signature); `encode_numpy` is the same mapping in NumPy for tests and for callers without
TensorFlow. Age mean / std are fitted on a *training* table only (`MetadataEncoding.fit`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SEXES = ("female", "male", "unknown")
UNKNOWN = "unknown"
HAM10000_SITES = (
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "unknown",
    "upper extremity",
)
# Gessert et al.: each property is set missing with this probability during training.
DEFAULT_MISSING_RATE = 0.1


@dataclasses.dataclass(frozen=True)
class MetadataEncoding:
    """Encodes (age, sex, site) as `float32[num_features]`.

    Args:
        age_mean, age_std: normalisation of age in years (fit them on the training table).
        sites: site vocabulary; "unknown" is appended when absent. Sites outside it encode as
            "unknown".

    Example:
        >>> enc = MetadataEncoding(age_mean=50.0, age_std=10.0)
        >>> enc.num_features
        20
        >>> enc.encode_numpy([60.0], ["male"], ["back"])[0, :5].tolist()
        [1.0, 0.0, 0.0, 1.0, 0.0]
    """

    age_mean: float = 0.0
    age_std: float = 1.0
    sites: tuple[str, ...] = HAM10000_SITES

    def __post_init__(self):
        sites = tuple(_normalise_category(s) for s in self.sites)
        if len(set(sites)) != len(sites):
            raise ValueError(f"sites must be unique. Received: sites={self.sites}")
        if UNKNOWN not in sites:
            sites = sites + (UNKNOWN,)
        object.__setattr__(self, "sites", sites)
        if not (self.age_std > 0 and math.isfinite(self.age_std)):
            raise ValueError(f"age_std must be positive and finite. Received: age_std={self.age_std}")
        if not math.isfinite(self.age_mean):
            raise ValueError(f"age_mean must be finite. Received: age_mean={self.age_mean}")

    @classmethod
    def fit(cls, samples_frame, sites=HAM10000_SITES) -> "MetadataEncoding":
        """Fits the age mean / std on a (training) samples frame with an `age` column."""
        ages = np.asarray(samples_frame["age"], dtype=np.float64)
        ages = ages[np.isfinite(ages)]
        mean = float(ages.mean()) if ages.size else 0.0
        std = float(ages.std()) if ages.size > 1 else 1.0
        return cls(age_mean=mean, age_std=std if std > 0 else 1.0, sites=tuple(sites))

    @property
    def num_features(self) -> int:
        return 2 + len(SEXES) + len(self.sites)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return (
            ("age_normalised", "age_missing")
            + tuple(f"sex_{s}" for s in SEXES)
            + tuple(f"site_{s}" for s in self.sites)
        )

    def to_config(self) -> dict:
        return {"age_mean": self.age_mean, "age_std": self.age_std, "sites": list(self.sites)}

    @classmethod
    def from_config(cls, config: dict) -> "MetadataEncoding":
        return cls(
            age_mean=float(config["age_mean"]),
            age_std=float(config["age_std"]),
            sites=tuple(config["sites"]),
        )

    # ---- TensorFlow ----------------------------------------------------------------------------
    def encode(self, age, sex, site):
        """Encodes tensors of equal shape `[...]` (float age, string sex / site) -> `[..., F]`."""
        import tensorflow as tf

        age = tf.cast(age, tf.float32)
        missing = tf.math.is_nan(age)
        age_normalised = tf.where(missing, 0.0, (age - self.age_mean) / self.age_std)
        return tf.concat(
            [
                age_normalised[..., None],
                tf.cast(missing, tf.float32)[..., None],
                _one_hot_tf(sex, SEXES),
                _one_hot_tf(site, self.sites),
            ],
            axis=-1,
        )

    # ---- NumPy -----------------------------------------------------------------------------------
    def encode_numpy(self, age, sex, site) -> np.ndarray:
        """NumPy version of `encode` for 1-D inputs -> `float32[N, F]`."""
        age = np.asarray(age, dtype=np.float64).reshape(-1)
        sex = [_normalise_category(s) for s in np.asarray(sex, dtype=object).reshape(-1)]
        site = [_normalise_category(s) for s in np.asarray(site, dtype=object).reshape(-1)]
        out = np.zeros((len(age), self.num_features), dtype=np.float32)
        missing = ~np.isfinite(age)
        out[:, 0] = np.where(missing, 0.0, (np.where(missing, 0.0, age) - self.age_mean) / self.age_std)
        out[:, 1] = missing
        for row, (s, loc) in enumerate(zip(sex, site)):
            out[row, 2 + (SEXES.index(s) if s in SEXES else SEXES.index(UNKNOWN))] = 1.0
            index = self.sites.index(loc) if loc in self.sites else self.sites.index(UNKNOWN)
            out[row, 2 + len(SEXES) + index] = 1.0
        return out

    def encode_frame(self, samples_frame) -> np.ndarray:
        """`encode_numpy` of a samples frame's age / sex / site columns."""
        return self.encode_numpy(samples_frame["age"], samples_frame["sex"], samples_frame["site"])


def random_missing(age, sex, site, seed, rate: float = DEFAULT_MISSING_RATE):
    """Sets each property of each sample missing independently with probability `rate`.

    Age becomes NaN, sex / site become "unknown". Stateless: `seed` is an `int32[2]` tensor.
    Returns the new `(age, sex, site)` tensors.
    """
    import tensorflow as tf

    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1]. Received: rate={rate}")
    age = tf.cast(age, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), 3)
    shape = tf.shape(age)

    def drop(index):
        return tf.random.stateless_uniform(shape, seeds[index]) < rate

    age = tf.where(drop(0), tf.constant(float("nan")), age)
    sex = tf.where(drop(1), tf.constant(UNKNOWN), sex)
    site = tf.where(drop(2), tf.constant(UNKNOWN), site)
    return age, sex, site


def _normalise_category(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    text = str(value).strip().lower()
    return text if text and text != "nan" else UNKNOWN


def _one_hot_tf(values, vocabulary):
    """One-hot over `vocabulary` (which contains "unknown"); anything else maps to "unknown"."""
    import tensorflow as tf

    values = tf.strings.lower(tf.strings.strip(tf.convert_to_tensor(values, tf.string)))
    matches = tf.equal(values[..., None], tf.constant(vocabulary))
    known = tf.reduce_any(matches, axis=-1, keepdims=True)
    unknown = tf.equal(tf.range(len(vocabulary)), vocabulary.index(UNKNOWN))
    return tf.cast(tf.logical_or(matches, tf.logical_and(tf.logical_not(known), unknown)), tf.float32)
