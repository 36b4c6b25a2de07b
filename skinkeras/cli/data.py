"""`skinkeras data ...`: list the dataset loaders, summarise a dataset folder, generate data.

    skinkeras data list
    skinkeras data summary ham10000 --root ../shared/data/ham10000 [--json] [--no-check-images]
    skinkeras data synth ham10000 --out /tmp/ham_synth --n 600 --seed 0 [--image-size 200x150] [--force]
    skinkeras data synth derm7pt --out /tmp/d7 --n 1011 [--evidence-low 0.3] [--missing-clinical 0.1]
    skinkeras data synth eis --images-from ham10000 --root ../shared/data/ham10000 --out /tmp/eis_paired \
        [--lesions 988|N|all] [--effect-size X] [--seed 0]   (SEMI-SYNTHETIC: real images, generated spectra)

`summary` exits 0 when it could read the dataset, even if it found problems (they are what it
reports); bad roots and unknown names are errors (exit 2). No TensorFlow is imported here.
"""

from __future__ import annotations

import argparse
import json


def _list(args) -> int:
    from skinkeras.data.registry import describe_dataset, list_datasets

    names = list_datasets()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {describe_dataset(name)}")
    return 0


def _parse_options(pairs) -> dict:
    from skinkeras.errors import ConfigError

    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"loader options look like key=value. Received: {pair!r}")
        options[key.strip()] = value
    return options


def _summary(args) -> int:
    from skinkeras.data.registry import get_dataset
    from skinkeras.data.summary import format_summary, summarize
    from skinkeras.errors import ConfigError

    loader = get_dataset(args.name)
    options = _parse_options(args.option)
    try:
        table = loader(args.root, **options)
    except TypeError as error:
        if options and "unexpected keyword" in str(error):
            raise ConfigError(f"dataset {args.name!r} does not take option(s) {sorted(options)}: {error}") from None
        raise
    summary = summarize(table, check_images=not args.no_check_images)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary, max_ids=args.max_ids))
    return 0


def _lesions(value: str):
    """--lesions: "all" or a count."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'all' or an integer. Received: {value!r}") from None


def _synth(args) -> int:
    from skinkeras.data.synth import synthesize
    from skinkeras.errors import ConfigError

    options = {"force": args.force}
    if args.effect_size is not None:
        if args.name != "eis":
            raise ConfigError(f"--effect-size is an eis option. Received layout: {args.name!r}")
        options["effect_size"] = args.effect_size
    for flag, key in (("--evidence-low", "evidence_low"), ("--missing-clinical", "missing_clinical")):
        value = getattr(args, key)
        if value is None:
            continue
        if args.name != "derm7pt":
            raise ConfigError(f"{flag} is a derm7pt option. Received layout: {args.name!r}")
        options[key] = value
    if args.images_from is not None:
        if args.image_size:
            raise ConfigError("--image-size does not apply to --images-from (the real images are copied as they are)")
        options["root"] = args.root
        if args.lesions is not None:
            options["lesions"] = args.lesions
        result = synthesize(args.name, args.out, n=args.n, seed=args.seed, images_from=args.images_from, **options)
    else:
        for flag, value in (("--root", args.root), ("--lesions", args.lesions)):
            if value is not None:
                raise ConfigError(f"{flag} needs --images-from (the semi-synthetic EIS set). Received: {flag} {value}")
        n = 600 if args.n is None else args.n
        result = synthesize(args.name, args.out, n=n, seed=args.seed, image_size=args.image_size, **options)
    print(result.describe())
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, summarise and generate datasets",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="the registered dataset loaders, one line each")
    listing.set_defaults(func=_list)

    summary = sub.add_parser(
        "summary",
        help="counts, image sizes, masks, metadata and every problem by image id",
        description="Read a dataset folder with its loader and report what it holds and what is wrong "
        "with it (missing files, unknown labels, duplicates, bad ages, unreadable or non-RGB images).",
    )
    summary.add_argument("name", help="dataset name (see `skinkeras data list`)")
    summary.add_argument("--root", required=True, help="the dataset folder")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.add_argument("--no-check-images", action="store_true",
                         help="do not decode the images (sizes from headers; corrupt files are not found)")
    summary.add_argument("--option", action="append", metavar="KEY=VALUE",
                         help="loader option, e.g. splits=train,val for isic2017 (repeatable)")
    summary.add_argument("--max-ids", type=int, default=20, help="image ids listed per problem kind in the table")
    summary.set_defaults(func=_summary)

    synth = sub.add_parser(
        "synth",
        help="write generated data (NOT medical data) in a dataset's layout",
        description="Write lesion-like generated images (and masks, metadata, EIS spectra) in the "
        "on-disk layout of a dataset, so its loader reads them. NOT medical data.",
    )
    synth.add_argument("name", help="layout: ham10000, isic2017, derm7pt, eis or folder")
    synth.add_argument("--out", required=True, help="output folder (must be empty unless --force)")
    synth.add_argument("--n", type=int, help="number of images (lesions for eis; cases for derm7pt); default 600")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", metavar="WxH", help="image size, e.g. 200x150 (default per layout)")
    synth.add_argument("--force", action="store_true", help="write into a non-empty folder")
    synth.add_argument("--effect-size", type=float,
                       help="eis: scale of the malignant spectra effect (default 1.0; with --images-from the "
                       "calibrated default of skinkeras.data.synth.eis_paired)")
    synth.add_argument("--evidence-low", type=float, metavar="W",
                       help="derm7pt: lowest share of the true class in each view's look, drawn per view "
                       "in W..1 (default 0.3; lower = views more often misleading)")
    synth.add_argument("--missing-clinical", type=float, metavar="SHARE",
                       help="derm7pt: share of cases without a clinical image (empty 'clinic' cell; default 0)")
    synth.add_argument("--images-from", metavar="DATASET",
                       help="eis only: pair REAL images of DATASET (ham10000) with generated spectra (semi-synthetic)")
    synth.add_argument("--root", help="with --images-from: the real dataset's folder")
    synth.add_argument("--lesions", type=_lesions,
                       help="with --images-from: number of lesions (default 988, paper 000's 631 benign + 357 "
                       "malignant) or 'all'")
    synth.set_defaults(func=_synth)
