"""Property-test your own solvers and models the way oscsim tests its own.

- `oscsim.testing.strategies`: hypothesis strategies for networks (`network_parameters`),
  initial states (`initial_states`) and drives (`drives`).
- `oscsim.testing.properties`: checks that take any solver callable — empirical
  convergence order, agreement with the Numba reference, energy conservation of the
  linear undamped network, decay at the slowest Fourier mode's rate, coRNN's energy bound.

Example (a test of your own solver against the reference)::

    import numpy as np
    from hypothesis import given, settings, strategies as st
    from oscsim.testing import assert_solvers_agree, initial_states, network_parameters
    from oscsim.testing import reference_solver

    @settings(max_examples=20, deadline=None)
    @given(data=st.data())
    def test_my_solver(data):
        params = data.draw(network_parameters(couplings=st.just("local")))
        y0, z0 = data.draw(initial_states(params))
        assert_solvers_agree(my_rk4, reference_solver("rk4"), params, y0, z0,
                             np.array([0.0, 0.5]), dt=0.01, rtol=1e-9)
"""

from oscsim.testing.properties import (
    PropertyFailure,
    Solver,
    assert_convergence_order,
    assert_cornn_energy_bound,
    assert_solvers_agree,
    cornn_bound_holds,
    empirical_order,
    energy_drift_order,
    linear_energy,
    measured_decay_rate,
    reference_solver,
    slowest_decay_rate,
    torch_solver,
)
from oscsim.testing.strategies import drives, initial_states, network_parameters

__all__ = [
    "PropertyFailure",
    "Solver",
    "assert_convergence_order",
    "assert_cornn_energy_bound",
    "assert_solvers_agree",
    "cornn_bound_holds",
    "drives",
    "empirical_order",
    "energy_drift_order",
    "initial_states",
    "linear_energy",
    "measured_decay_rate",
    "network_parameters",
    "reference_solver",
    "slowest_decay_rate",
    "torch_solver",
]
