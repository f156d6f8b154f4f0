"""Learned front-ends of oscsim: encoders, decoders, classifiers, forecasters, data sets.

`load_model` returns the model of a checkpoint written by ``oscsim train``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import oscsim.models`` stays light.
    if name == "load_model":
        from oscsim.models.runs import load_model

        return load_model
    raise AttributeError(f"module 'oscsim.models' has no attribute {name!r}")
