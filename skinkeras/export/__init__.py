"""Exporting trained runs: a serving SavedModel for servers, TFLite models for phones (`serving`,
`tflite`), their verification against the Keras model (`verify`), prediction from any of them
(`predictor`) and the `skinkeras export` orchestration (`run_export`)."""
