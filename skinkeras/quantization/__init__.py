"""Simulating int8 rounding for the int8 export: the `FakeQuant` layer and the ranges file
(`fake_quant`) and the graph surgery that puts it where TFLite rounds (`simulate`). The
`skinkeras finetune-int8` workflow is the classification system's
(`skinkeras.systems.classification.finetune_int8`)."""
