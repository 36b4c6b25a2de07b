"""`skinkeras bench ...`: benchmark commands.

Each module in `skinkeras.bench` that defines `add_arguments(parser)` and `run(args) -> int`
becomes `skinkeras bench <module name>`; its docstring's first line is the help text.
"""

from __future__ import annotations

import importlib
import pkgutil


def register(subparsers) -> None:
    import skinkeras.bench as bench_package

    parser = subparsers.add_parser("bench", help="measure speed and memory")
    bench_sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for info in sorted(pkgutil.iter_modules(bench_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{bench_package.__name__}.{info.name}")
        if not hasattr(module, "run"):
            continue
        summary = (module.__doc__ or info.name).strip().splitlines()[0]
        sub = bench_sub.add_parser(info.name, help=summary, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
