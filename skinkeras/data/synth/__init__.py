"""Generated datasets in the on-disk layouts of the real ones. NOT medical data.

`synthesize(name, out_dir, n, seed)` writes a folder that the loader of the same name reads like
the real release: lesion-like blobs whose colour, shape and texture depend on the class (so a model
can learn them), matching 0/255 masks, plausible metadata, derm7pt-style clinical + dermoscopic
pairs, and Cole-model EIS spectra. Every folder gets a `README_SYNTHETIC.txt` saying it is
generated. Output is deterministic given the seed.

    >>> from skinkeras.data.synth import synthesize
    >>> result = synthesize("ham10000", "/tmp/ham_synth", n=60, seed=0)  # doctest: +SKIP

One SEMI-SYNTHETIC set: real HAM10000 images paired with generated EIS spectra
(`synthesize("eis", out, images_from="ham10000", root=HAM_DIR)`, see `skinkeras.data.synth.eis_paired`).
"""

from __future__ import annotations

from skinkeras.data.synth.common import NOTICE, NOTICE_FILE, SynthResult, parse_image_size
from skinkeras.data.synth.derm7pt import synthesize_derm7pt
from skinkeras.data.synth.eis import synthesize_eis
from skinkeras.data.synth.eis_paired import synthesize_eis_paired
from skinkeras.data.synth.folder import synthesize_folder
from skinkeras.data.synth.ham10000 import synthesize_ham10000
from skinkeras.data.synth.isic2017 import synthesize_isic2017
from skinkeras.errors import SkinkerasError

GENERATORS = {
    "ham10000": synthesize_ham10000,
    "isic2017": synthesize_isic2017,
    "derm7pt": synthesize_derm7pt,
    "eis": synthesize_eis,
    "folder": synthesize_folder,
}


class UnknownGeneratorError(SkinkerasError, ValueError):
    """No generator for that layout name."""


PAIRED_SOURCES = ("ham10000",)  # real image datasets that `images_from` can pair with EIS spectra


def synthesize(name: str, out_dir, n: int | None = None, seed: int = 0, *, images_from: str | None = None,
               **options) -> SynthResult:
    """Write `n` generated samples in the layout `name` to `out_dir` (see `GENERATORS`).

    Options: `image_size` ("WxH" or (w, h)), `force` (write into a non-empty folder), and the
    per-layout ones of each `synthesize_<name>` function. `images_from="ham10000"` (eis only) writes
    the semi-synthetic set instead: it needs `root` and takes `lesions` (not `n`), `effect_size`,
    `image_choice`, `force`.
    """
    if images_from is not None:
        if name != "eis":
            raise UnknownGeneratorError(f"--images-from pairs real images with EIS spectra: layout eis only. "
                                        f"Received: {name!r}")
        if images_from not in PAIRED_SOURCES:
            raise UnknownGeneratorError(f"--images-from supports {list(PAIRED_SOURCES)}. Received: {images_from!r}")
        if not options.get("root"):
            raise SkinkerasError(f"--images-from {images_from} needs --root, the {images_from} folder")
        if n is not None:
            raise SkinkerasError(f"--images-from takes --lesions N|all, not --n. Received: n={n}")
        root = options.pop("root")
        return synthesize_eis_paired(out_dir, root, images_from=images_from, seed=seed, **options)
    if n is None:
        raise SkinkerasError(f"a generated {name} dataset needs n (--n)")
    try:
        generator = GENERATORS[name]
    except KeyError:
        raise UnknownGeneratorError(f"no generator for {name!r}; valid names: {', '.join(sorted(GENERATORS))}") from None
    return generator(out_dir, n=n, seed=seed, **options)


__all__ = [
    "GENERATORS", "NOTICE", "NOTICE_FILE", "SynthResult", "parse_image_size", "synthesize",
    "PAIRED_SOURCES", "synthesize_derm7pt", "synthesize_eis", "synthesize_eis_paired", "synthesize_folder",
    "synthesize_ham10000", "synthesize_isic2017",
]
