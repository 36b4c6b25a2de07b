"""A quiet command line: none of TensorFlow's C++ start-up lines on ordinary commands, unless asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# What TensorFlow 2.21 prints on a machine without a GPU (absl before its init, CUDA, oneDNN).
CHATTER = ("cuInit", "cudart_stub", "oneDNN custom operations", "E0000", "W0000", "I0000",
           "absl::InitializeLog", "WARNING:absl")


def test_ordinary_commands_print_no_tensorflow_log_lines(tmp_path):
    data = tmp_path / "data"
    code = (
        "from skinkeras.cli import main\n"
        f"assert main(['data', 'synth', 'folder', '--out', {str(data)!r}, '--n', '3']) == 0\n"
        f"assert main(['data', 'summary', 'folder', '--root', {str(data)!r}]) == 0\n"
        "assert main(['models', 'list']) == 0\n"  # imports TensorFlow and Keras
        "import sys; assert 'tensorflow' in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SKINKERAS_VERBOSE")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MobileNetV3Small" in result.stdout
    found = [line for line in result.stderr.splitlines() if any(word in line for word in CHATTER)]
    assert not found, "\n".join(found)


def test_captured_stderr_keeps_what_is_not_tensorflow_chatter(capfd):
    from skinkeras.quiet import _drop_native_chatter

    with _drop_native_chatter():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796646580.300868    4697 cudart_stub.cc:31] Could not find cuda drivers\n")
        os.write(2, b"E0000 00:00:1796646626.441171 4858 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
        os.write(2, b"a real problem from a library\n")
        print("Traceback (most recent call last): a Python error", file=sys.stderr)
    err = capfd.readouterr().err  # (pytest captures sys.stderr apart from fd 2: order may differ)
    assert sorted(err.splitlines()) == ["Traceback (most recent call last): a Python error",
                                        "a real problem from a library"]


def test_litert_first_run_notice_is_dropped_unless_verbose(capfd, monkeypatch):
    from skinkeras.quiet import VERBOSE_ENV, native_chatter_dropped

    notice = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    monkeypatch.setenv(VERBOSE_ENV, "")
    with native_chatter_dropped():
        os.write(2, notice)
    assert capfd.readouterr().err == ""
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with native_chatter_dropped():
        os.write(2, notice)
    assert capfd.readouterr().err == notice.decode()


@pytest.mark.parametrize("flag, env", [(True, ""), (False, "1")])
def test_verbose_leaves_tensorflow_alone(monkeypatch, flag, env):
    from skinkeras import quiet

    monkeypatch.setenv(quiet.VERBOSE_ENV, env)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    assert quiet.quiet_tensorflow(flag) is False
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert not any(isinstance(finder, quiet._QuietFinder) for finder in sys.meta_path)
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")
    assert quiet.quiet_tensorflow(False) is True and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
