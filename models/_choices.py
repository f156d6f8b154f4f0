"""The one check every model and task factory makes on the name it is asked for."""

from __future__ import annotations

from collections.abc import Iterable

from oscsim.errors import OscsimInputError


def check_known(what: str, name: str, known: Iterable[str]) -> None:
    """Raise `OscsimInputError` unless ``name`` is one of ``known``.

    Parameters
    ----------
    what
        What ``name`` names, as the message says it (``ICAR model``, ``forecasting model``).
    name
        The name asked for.
    known
        The names allowed (a registry's keys), in the order the message lists them.

    Raises
    ------
    OscsimInputError
        ``unknown ICAR model 'x'; choose one of icar_nwm2d, …`` for a name not in ``known``.
    """
    choices = list(known)
    if name not in choices:
        raise OscsimInputError(f"unknown {what} {name!r}; choose one of {', '.join(choices)}")
