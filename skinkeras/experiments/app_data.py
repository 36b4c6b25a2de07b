"""Where a `make train-*` app gets its data: the folder the user gave, or generated data, said so.

The apps behind `make train-ham10000` and `make train-isic2017` run on a real release when given
`DATA=` and otherwise on a small generated set in the same layout (NOT medical data), made once
and reused, so every stage can be seen working on any machine.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.errors import SkinkerasError


def real_or_generated_root(data: str, *, experiment: str, dataset_label: str, make_hint: str, generator: str,
                           generated_dir, n: int, marker: str, what: str = "", **synth_options) -> tuple[Path, bool]:
    """Returns `(root, generated)`.

    Args:
        data: the user's folder ("" for none).
        dataset_label: how the data set is named in messages ("HAM10000").
        make_hint: the command that uses real data, shown when none is given.
        generator: the `skinkeras.data.synth` layout name; `marker` a file the layout always has
            (generated data already in `generated_dir` is reused when both it and the notice exist).
        what: extra words for the generated-data notice (e.g. ", tiny models").
        synth_options: passed to `synthesize` (image_size, fractions, ...).
    """
    if data:
        root = Path(data).resolve()
        if not root.is_dir():
            raise SkinkerasError(f"DATA={data}: no such folder")
        print(f"Training {experiment} on the {dataset_label} data set in {root}")
        return root, False
    from skinkeras.data.synth import NOTICE_FILE, synthesize

    print(f"No dataset given ({make_hint} for the real one).")
    print(f"Running on GENERATED data instead: lesion-like drawings, NOT medical data{what}; the figures "
          "below only show that every stage works.")
    folder = Path(generated_dir)
    if (folder / NOTICE_FILE).exists() and (folder / marker).exists():
        print(f"Using the generated data already in {folder}")
    else:
        print(f"Generating {n} synthetic {dataset_label}-layout images in {folder} ...")
        synthesize(generator, folder, n=n, seed=0, **synth_options)
    return folder.resolve(), True
