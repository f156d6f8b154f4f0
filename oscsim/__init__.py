"""oscsim: topographic coupled oscillator networks — simulate, train, analyse.

The public API: `OscillatorNetwork` (the vector field), `integrate` (every method),
`imex_sequence` (the coRNN scheme over a whole drive sequence, fused) with its argument
record `ImexField` and `map_inputs`, `NetworkParameters` (a torch-free description),
configuration (`parse_override` for ``--set KEY=VALUE``) and trajectory I/O.
Submodules that need torch are imported on first use, so ``import oscsim`` stays light
and the Numba reference (`oscsim.reference`) never pulls torch in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oscsim.errors import IntegrationError, OscsimInputError, OscsimWarning
from oscsim.parameters import ACTIVATIONS, COUPLINGS, NetworkParameters

__version__ = "0.1.0"
"""The package version."""

if TYPE_CHECKING:
    from oscsim.config import SimulationConfig, load_config, parse_config, parse_override
    from oscsim.fused import map_inputs
    from oscsim.integration import Solution, integrate
    from oscsim.io import open_trajectory, read_trajectory, trajectory_dataset, write_trajectory
    from oscsim.network import OscillatorNetwork
    from oscsim.simulation import simulate
    from oscsim.solvers import ImexField, check_method, imex_sequence

_LAZY = {
    "OscillatorNetwork": "oscsim.network",
    "integrate": "oscsim.integration",
    "Solution": "oscsim.integration",
    "SimulationConfig": "oscsim.config",
    "load_config": "oscsim.config",
    "parse_config": "oscsim.config",
    "parse_override": "oscsim.config",
    "simulate": "oscsim.simulation",
    "ImexField": "oscsim.solvers",
    "imex_sequence": "oscsim.solvers",
    "check_method": "oscsim.solvers",
    "map_inputs": "oscsim.fused",
    "read_trajectory": "oscsim.io",
    "open_trajectory": "oscsim.io",
    "write_trajectory": "oscsim.io",
    "trajectory_dataset": "oscsim.io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oscsim' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "COUPLINGS",
    "ImexField",
    "IntegrationError",
    "NetworkParameters",
    "OscillatorNetwork",
    "OscsimInputError",
    "OscsimWarning",
    "SimulationConfig",
    "Solution",
    "__version__",
    "check_method",
    "imex_sequence",
    "integrate",
    "load_config",
    "map_inputs",
    "open_trajectory",
    "parse_config",
    "parse_override",
    "read_trajectory",
    "simulate",
    "trajectory_dataset",
    "write_trajectory",
]
