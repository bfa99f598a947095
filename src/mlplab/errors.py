"""The one exception type that means "the user asked for something we cannot do"."""


class MlplabError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2.

    Messages say what is wrong and what to do about it, e.g.
    ``unknown preset 'lab2'; choose one of: lab, logistic, seq, tutorial, twolayer``.
    """
