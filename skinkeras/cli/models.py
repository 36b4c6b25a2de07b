"""`skinkeras models ...`: the model zoo from the command line.

    skinkeras models list [--json]
    skinkeras models params --backbone DenseNet201 --head soft_attention \
        [--metadata paper001|gessert|none] [--metadata-features 20] [--num-classes 7] \
        [--image-size 224] [--no-gamma] [--json]

`list` prints the backbone registry (sizes, scaling, feature widths, soft-attention insertion
points, keras.io figures); `params` builds a classifier with random weights and prints its total,
trainable and non-trainable parameter counts and depth. Keras is imported inside the handlers.
"""

from __future__ import annotations

import json


def _insertion_text(point) -> str:
    path = "".join(f"<-in{i}" for i in point.back)
    return f"{point.anchor}{path}"


def _registry_rows() -> list[dict]:
    from skinkeras.models.backbones import BACKBONES

    rows = []
    for spec in BACKBONES.values():
        doc = spec.documented
        rows.append(
            {
                "name": spec.name,
                "constructor": spec.constructor.__name__,
                "default_size": spec.default_size,
                "min_size": spec.min_size,
                "scaling": spec.scaling,
                "feature_width": spec.feature_width,
                "attention_point": _insertion_text(spec.attention),
                "attention_layer_type": spec.attention.layer_type,
                "attention_shape": list(spec.attention.shape),
                "attention_source": spec.attention.source,
                "attention_note": spec.attention.note,
                "imagenet_weights": spec.imagenet_weights,
                "documented": None if doc is None else dict(vars(doc)),
            }
        )
    return rows


def _list(args) -> int:
    rows = _registry_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("backbone", "size", "min", "scaling", "width", "soft-attention point", "shape", "from", "MB", "top-1")
    table = [header]
    for r in rows:
        doc = r["documented"] or {}
        table.append(
            (
                r["name"], str(r["default_size"]), str(r["min_size"]), r["scaling"], str(r["feature_width"]),
                f'{r["attention_point"]} ({r["attention_layer_type"]})',
                "x".join(map(str, r["attention_shape"])), r["attention_source"],
                str(doc.get("size_mb", "-")), f'{doc["top1"]:.1f}' if doc else "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("MB, top-1: keras.io/api/applications documentation figures; 'from': paper001 reference code or ours.")
    return 0


def _params(args) -> int:
    from skinkeras.errors import ConfigError

    metadata = None if args.metadata in (None, "none") else args.metadata
    try:
        from skinkeras.models.classifier import ClassifierConfig

        config = ClassifierConfig(
            backbone=args.backbone,
            head=args.head,
            num_classes=args.num_classes,
            image_size=args.image_size,
            metadata=metadata,
            metadata_features=args.metadata_features,
            attention_gamma_init=None if args.no_gamma else 0.01,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    from skinkeras.models.backbones import get_backbone_spec

    spec = get_backbone_spec(config.backbone)
    if config.input_size < spec.min_size:
        raise ConfigError(
            f"{config.backbone} needs --image-size of at least {spec.min_size}. Received: {config.input_size}"
        )
    from skinkeras.models.classifier import build_classifier
    from skinkeras.models.inspection import parameter_counts, weighted_depth

    model = build_classifier(config)
    result = {
        "backbone": config.backbone,
        "head": config.head,
        "metadata": metadata or "none",
        "metadata_features": config.metadata_features if metadata else 0,
        "num_classes": config.num_classes,
        "image_size": config.input_size,
        "gamma": not args.no_gamma if config.head == "soft_attention" else None,
        **parameter_counts(model),
        "depth": weighted_depth(model),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            is_count = isinstance(value, int) and not isinstance(value, bool)
            print(f"{key:<18} {value:,}" if is_count else f"{key:<18} {value}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="backbone registry and model parameter counts")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    list_parser = sub.add_parser("list", help="the backbone registry")
    list_parser.add_argument("--json", action="store_true", help="machine-readable output")
    list_parser.set_defaults(func=_list)

    params = sub.add_parser("params", help="parameter counts of a classifier")
    params.add_argument("--backbone", required=True, help="a registry name (see `skinkeras models list`)")
    params.add_argument("--head", default="soft_attention", help="gap, se, cbam or soft_attention")
    params.add_argument("--metadata", default="none", choices=("none", "paper001", "gessert"))
    params.add_argument("--metadata-features", type=int, default=20, help="metadata vector width (default 20)")
    params.add_argument("--num-classes", type=int, default=7)
    params.add_argument("--image-size", type=int, default=None, help="default: the backbone's size")
    params.add_argument(
        "--no-gamma", action="store_true", help="soft attention without gamma, as paper 001's reference code"
    )
    params.add_argument("--json", action="store_true", help="machine-readable output")
    params.set_defaults(func=_params)
