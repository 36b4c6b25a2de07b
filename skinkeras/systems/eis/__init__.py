"""Paper 000's EIS + dermoscopy melanoma detection (task "eis"): per-measurement SVM / FC-NN
baselines, GRUs over the measurement sequence (last-state, state-mean and state-max pooling), image
CNNs, and joint image + EIS models (Lin, FC, cross-attention).

`model` holds the builders (each returns `model.EISModels(train, infer)`), `layers` the registered
layers they use (masked pooling over padded measurement sequences, max-of-malignancy outputs).
Heavy imports happen inside the modules that need them.
"""
