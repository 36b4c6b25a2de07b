"""skinkeras: five published skin-lesion classification systems as one Keras 3 library.

Importing the package is cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"
