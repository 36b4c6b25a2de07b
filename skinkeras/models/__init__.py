"""Model zoo: backbone registry, attention layers, heads, metadata branches, classifier builders.

Submodules import Keras; import what you need from them, e.g.
`from skinkeras.models.classifier import ClassifierConfig, build_classifier`.
"""
