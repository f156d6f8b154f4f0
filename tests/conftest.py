"""Test configuration: hypothesis profiles and shared fixtures.

Profiles: ``ci`` (default, fast) and ``thorough`` (deep runs:
``HYPOTHESIS_PROFILE=thorough nox -s tests``).
"""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Numerical tests run in float64 unless they say otherwise; their tensors are tiny, so one
# thread avoids paying for thread synchronisation on every small operation.
torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
