"""oscsim: topographic coupled oscillator networks — simulate, train, analyse.

The public API: `OscillatorNetwork` (the vector field), `integrate` (every method),
`imex_sequence` (the coRNN scheme over a whole drive sequence, fused) with its argument
record `ImexField` and `map_inputs`, `NetworkParameters` (a torch-free description),
configuration (`parse_override` for ``--set KEY=VALUE``) and trajectory I/O.
Submodules that need torch are imported on first use, so ``import oscsim`` stays light
and the Numba reference (`oscsim.reference`) never pulls torch in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oscsim.errors import IntegrationError, OscsimInputError, OscsimWarning
from oscsim.lazy import lazy_attributes
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

#: Submodule (relative to the package) → the names it provides on first use.
_LAZY = {
    "network": ("OscillatorNetwork",),
    "integration": ("integrate", "Solution"),
    "config": ("SimulationConfig", "load_config", "parse_config", "parse_override"),
    "simulation": ("simulate",),
    "solvers": ("ImexField", "imex_sequence", "check_method"),
    "fused": ("map_inputs",),
    "io": ("read_trajectory", "open_trajectory", "write_trajectory", "trajectory_dataset"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


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
