"""Independent Numba float64 reference solvers for the oscillator network.

`solve` integrates a network described by `oscsim.NetworkParameters` with ``euler``,
``rk4`` (Kutta's 3/8 rule, as torchdiffeq's ``rk4``), the coRNN ``imex`` scheme or an
adaptive ``dopri5`` with torchdiffeq's error norm and step control. The code is written
apart from the torch core — it imports no torch and shares no kernels with it — so that
agreement between the two backends means something.

The kernels are compiled on first use and cached on disk (``cache=True``); each compiles
to a single specialization whatever the coupling, activation or method.
"""

from oscsim.reference._solve import REFERENCE_METHODS, solve

__all__ = ["REFERENCE_METHODS", "solve"]
