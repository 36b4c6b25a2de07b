"""Datasets: loaders for the official on-disk layouts, generated data, summaries and splits.

    >>> from skinkeras.data import load_dataset, list_datasets
    >>> table = load_dataset("ham10000", "../shared/data/ham10000")  # doctest: +SKIP

Loaders return a `SampleTable` (paths, labels, lesion ids, metadata; never pixels). Importing this
package loads no loader and no TensorFlow; the registry imports the built-in loaders on first use.
"""

from skinkeras.data.registry import get_dataset, list_datasets, load_dataset, register_dataset
from skinkeras.data.table import Problem, SampleTable

__all__ = ["Problem", "SampleTable", "get_dataset", "list_datasets", "load_dataset", "register_dataset"]
