"""Independent Numba float64 reference solvers for the oscillator network.

`solve` integrates a network described by `oscsim.NetworkParameters` with ``euler``,
``rk4`` (Kutta's 3/8 rule, as torchdiffeq's ``rk4``), the coRNN ``imex`` scheme or an
adaptive ``dopri5`` with torchdiffeq's error norm and step control. The code is written
apart from the torch core — it imports no torch and shares no kernels with it — so that
agreement between the two backends means something.

The kernels are compiled on first use and cached on disk (``cache=True``); each compiles
to a single specialization whatever the coupling, activation or method. Threads are an
explicit option of `solve` (``threads``, default 1: the serial kernels).

Besides `solve`, the pieces it is built of are public for benchmarks that time the
stepping alone: `build_network` (the parameters as the kernels read them),
`integrate_fixed` (the fixed-step driver), `InputSchedule` (a sampled drive),
`RK4_THREE_EIGHTHS` (the rk4 tableau) and `numba_threads`.
"""

from oscsim.reference._fixed_step import integrate_fixed
from oscsim.reference._inputs import InputSchedule
from oscsim.reference._network import build as build_network
from oscsim.reference._solve import (
    PARALLEL_MIN_SIZE,
    REFERENCE_METHODS,
    numba_threads,
    solve,
)
from oscsim.reference._tableau import RK4_THREE_EIGHTHS

__all__ = [
    "PARALLEL_MIN_SIZE",
    "REFERENCE_METHODS",
    "RK4_THREE_EIGHTHS",
    "InputSchedule",
    "build_network",
    "integrate_fixed",
    "numba_threads",
    "solve",
]
