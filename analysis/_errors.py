"""The exception raised for input the analysis cannot use."""

from __future__ import annotations


class AnalysisInputError(ValueError):
    """The data or an option cannot be analysed; the message says what is allowed.

    A subclass of `ValueError`, so the command line reports it as bad input (exit status 2).
    """
