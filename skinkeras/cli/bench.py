"""`skinkeras bench ...`: benchmark commands.

Each module in `skinkeras.bench` that defines `add_arguments(parser)` and `run(args) -> int`
becomes `skinkeras bench <module name>`; its docstring's first line is the help text. A system
folder contributes its own benchmark with a `bench.py` of the same shape
(`skinkeras/systems/<name>/bench.py`), named by its `BENCH_NAME` (default: the system's name);
only systems that have that file are imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def bench_modules() -> dict:
    """Benchmark name -> module: `skinkeras.bench.<name>` and `skinkeras.systems.<system>.bench`."""
    import skinkeras.bench as bench_package
    import skinkeras.systems as systems_package

    modules = {}
    for info in sorted(pkgutil.iter_modules(bench_package.__path__), key=lambda m: m.name):
        modules[info.name] = importlib.import_module(f"{bench_package.__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(systems_package.__path__), key=lambda m: m.name):
        if info.ispkg and (Path(info.module_finder.path) / info.name / "bench.py").is_file():
            module = importlib.import_module(f"{systems_package.__name__}.{info.name}.bench")
            modules.setdefault(getattr(module, "BENCH_NAME", info.name), module)
    return modules


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="measure speed and memory")
    bench_sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module in sorted(bench_modules().items()):
        if not hasattr(module, "run"):
            continue
        summary = (module.__doc__ or name).strip().splitlines()[0]
        sub = bench_sub.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
