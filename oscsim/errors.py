"""Exceptions and warnings raised by oscsim.

`OscsimInputError` marks bad input (the command line exits with status 2 for it);
`IntegrationError` marks a failed computation (status 1), with advice on what to change.
"""

from __future__ import annotations


class OscsimInputError(ValueError):
    """An argument, configuration key or file is not allowed; the message says what is."""


class IntegrationError(RuntimeError):
    """An integration failed (non-finite state, step size underflow); says what to change."""


class OscsimWarning(UserWarning):
    """A warning from oscsim; the test suite turns these into errors."""
