"""Training parts the tasks share: losses and class weights, SPL / OHEM sample selection
(`selection`, paper 003), and what a model is compiled with
(`objectives`: optimizer, classification loss and metrics). The epoch loop is the engine's
(`skinkeras.engine.fit`).

Modules are imported where they are needed (`skinkeras.training.losses` imports Keras,
`skinkeras.training.class_weights` only NumPy), so importing this package costs nothing.
"""
