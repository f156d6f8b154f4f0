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


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise `OscsimInputError` unless ``value`` is one of ``allowed``.

    The message names the argument, every allowed value and what was given:
    ``coupling must be one of local, global; got 'nearest'``.

    Examples
    --------
    >>> check_choice("method", "rk4", ("euler", "rk4"))
    >>> try:
    ...     check_choice("method", "rk5", ("euler", "rk4"))
    ... except OscsimInputError as error:
    ...     print(error)
    method must be one of euler, rk4; got 'rk5'
    """
    if value not in allowed:
        raise OscsimInputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
