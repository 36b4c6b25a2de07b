"""Training: losses and class weights, precision/strategy runtime, callbacks, the loop around fit.

Modules are imported where they are needed (`skinkeras.training.losses` imports Keras,
`skinkeras.training.class_weights` only NumPy), so importing this package costs nothing.
"""
