"""Running `.tflite` models with the LiteRT interpreter (`ai_edge_litert`), as on a phone.

`MODEL_FILE` is the model's name inside a `tflite_<quantize>/` export folder.
"""

from __future__ import annotations

from pathlib import Path

from skinkeras.errors import SkinkerasError

MODEL_FILE = "model.tflite"


class LiteRTModel:
    """A `.tflite` model run with the LiteRT interpreter: `predict(image, metadata) -> float32[C]`.

    `image`: float32 `[S, S, 3]` raw 0..255 (resized); `metadata`: float32 `[F]` or None.
    """

    def __init__(self, path, *, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise SkinkerasError(f"no TFLite model at {path}")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except ValueError as error:
            raise SkinkerasError(f"cannot load TFLite model {path}: {error}") from None
        self.runner = self.interpreter.get_signature_runner("serve")
        self.input_names = set(self.runner.get_input_details())
        self._first_run()

    def _first_run(self) -> None:
        """Runs the model once on zeros: LiteRT applies XNNPACK then and says so on stderr, a line
        that would land amid a command's output."""
        import numpy as np

        from skinkeras.quiet import native_chatter_dropped

        zeros = {name: np.zeros(detail["shape"], detail["dtype"])
                 for name, detail in self.runner.get_input_details().items()}
        with native_chatter_dropped():
            self.runner(**zeros)

    def delegate_partitions(self) -> int | None:
        """How many delegate (XNNPACK on CPU) partitions the graph runs in; None when this LiteRT
        cannot say. Ops between partitions run as TFLite kernels, and each switch costs time: this
        is why an int8 MobileNetV3 can be slower than float32 (see `skinkeras.export.tflite.unfused_hard_swish`).
        LiteRT applies XNNPACK at the first invocation, so the model is run once on zeros first.
        Reads the execution plan through a private method (no public one).
        """
        import numpy as np

        details = getattr(self.interpreter, "_get_ops_details", None)
        if details is None:
            return None
        shapes = {name: detail["shape"] for name, detail in self.runner.get_input_details().items()}
        self.predict(np.zeros(shapes["image"][1:], np.float32),
                     np.zeros(shapes["metadata"][1:], np.float32) if "metadata" in shapes else None)
        return sum(1 for op in details() if op.get("op_name") == "DELEGATE")

    def predict(self, image, metadata=None):
        import numpy as np

        inputs = {"image": np.asarray(image, np.float32)[None]}
        if "metadata" in self.input_names:
            if metadata is None:
                raise SkinkerasError("this TFLite model needs a metadata vector")
            inputs["metadata"] = np.asarray(metadata, np.float32)[None]
        return np.asarray(self.runner(**inputs)["probabilities"][0], dtype=np.float32)
