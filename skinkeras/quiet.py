"""A quiet TensorFlow start-up: the one place that decides what TensorFlow may print.

On a machine without a GPU, `import tensorflow` (2.21) writes lines that no environment variable
silences: absl's "All log messages before absl::InitializeLog() ..." banner and `I0000 ...
cudart_stub.cc] Could not find cuda drivers` are logged by C++ before TensorFlow reads
`TF_CPP_MIN_LOG_LEVEL`, and the first device query logs `E0000 ... failed call to cuInit`. They
bury the output people came for (and break `--json` readers that merge stderr).

`quiet_tensorflow()` therefore (1) sets `TF_CPP_MIN_LOG_LEVEL=2` for everything TensorFlow logs
once it is up, (2) runs TensorFlow's import and its device discovery with file descriptor 2
pointed at a temporary file, then writes back every captured line that is not a C++ log line
(Python warnings and errors stay visible), and (3) lowers the Python `absl` / `tensorflow` loggers
to errors. It hooks the import rather than importing TensorFlow, so commands that never touch
TensorFlow (`skinkeras data list`, `--help`) stay instant.

`native_chatter_dropped()` does (2) for other native start-up lines (LiteRT's XNNPACK notice).
`--verbose` on the command line, or `SKINKERAS_VERBOSE=1`, leaves all of this out.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import tempfile

VERBOSE_ENV = "SKINKERAS_VERBOSE"

# C++ log lines (glog / absl format: "E0000 00:00:1796646654.006554 5190 file.cc:52] ..."), absl's
# pre-initialisation banner, and the continuation line of TensorFlow's CPU-feature notice.
_CHATTER = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|.*oneDNN custom operations are on)"
)


def verbose_requested() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_chatter(line: str) -> bool:
    """Whether `line` is one of TensorFlow's C++ log lines (what a quiet start-up drops)."""
    return bool(_CHATTER.match(line))


@contextlib.contextmanager
def _drop_native_chatter():
    """Points fd 2 at a temporary file; on exit writes back what is not C++ log chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not is_chatter(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@contextlib.contextmanager
def native_chatter_dropped():
    """Drops native log lines written inside the block (LiteRT's "Created TensorFlow Lite XNNPACK
    delegate" on a model's first run) unless verbose output was asked for."""
    if verbose_requested():
        yield
        return
    with _drop_native_chatter():
        yield


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` inside `_drop_native_chatter`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps its real loader: nothing downstream should see this wrapper.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with _drop_native_chatter():
            self.loader.exec_module(module)
            # Device discovery is where cuInit fails on a machine without a GPU.
            module.config.list_physical_devices("GPU")
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_tensorflow(verbose: bool = False) -> bool:
    """Makes TensorFlow's start-up silent unless `verbose` or SKINKERAS_VERBOSE asks otherwise.

    Call it before TensorFlow is imported (the CLI's `main` and the apps do, first thing).
    Returns whether it is quiet; once TensorFlow is imported it only sets the Python loggers.
    """
    if verbose or verbose_requested():
        os.environ[VERBOSE_ENV] = "1"  # child processes (workers, benchmarks) follow suit
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)
    elif not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
    return True
