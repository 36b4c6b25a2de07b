"""Quantization-aware fine-tuning for the int8 export: the `FakeQuant` layer and the ranges file
(`fake_quant`), the graph surgery that simulates TFLite's rounding (`simulate`) and the
`skinkeras finetune-int8` workflow on the fit engine (`finetune`)."""
