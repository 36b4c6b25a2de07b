"""Errors meant for the person at the command line.

Library code raises `SkinkerasError` (or a subclass) for bad input it can explain: a wrong path, an
unknown dataset name, an unreadable CSV. The CLI prints its message as one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class SkinkerasError(Exception):
    """A problem with the user's input, explained in one line."""


class DataError(SkinkerasError):
    """A dataset on disk does not have the expected layout or content."""


class ConfigError(SkinkerasError):
    """An experiment config or a command-line override is invalid."""
