"""Data sets of oscsim: offline MNIST, sequence tasks, rotating MNIST, Hamiltonian systems.

Fetched and generated data live in the data directory, ``$OSCSIM_DATA`` or
``~/.cache/oscsim`` (fetch MNIST there with ``oscsim data mnist``). Generators are numpy-first and
deterministic from a seed; generated sets are cached there as ``.npz``.
"""

from oscsim.models.data._cache import DATA_ENV_VAR, data_dir
from oscsim.models.data.hamiltonian import (
    HAMILTONIAN_SYSTEMS,
    HamiltonianData,
    HamiltonianSystem,
    HamiltonianTrajectories,
    IdealPendulum,
    MassSpring,
    TwoBody,
    hamiltonian_dataset,
    hamiltonian_trajectories,
    pixel_coordinates,
    render_particles,
)
from oscsim.models.data.mnist import (
    FETCH_COMMAND,
    MnistFetchError,
    MnistNotFoundError,
    fetch_mnist,
    load_mnist,
    main_fetch,
    read_idx,
)
from oscsim.models.data.rotating import RotatingMNIST, rotate_sequences, rotating_mnist
from oscsim.models.data.sequences import (
    AddingProblemStream,
    SequentialMNIST,
    adding_problem_batch,
    adding_problem_split,
    pixel_permutation,
)

__all__ = [
    "DATA_ENV_VAR",
    "FETCH_COMMAND",
    "HAMILTONIAN_SYSTEMS",
    "AddingProblemStream",
    "HamiltonianData",
    "HamiltonianSystem",
    "HamiltonianTrajectories",
    "IdealPendulum",
    "MassSpring",
    "MnistFetchError",
    "MnistNotFoundError",
    "RotatingMNIST",
    "SequentialMNIST",
    "TwoBody",
    "adding_problem_batch",
    "adding_problem_split",
    "data_dir",
    "fetch_mnist",
    "hamiltonian_dataset",
    "hamiltonian_trajectories",
    "load_mnist",
    "main_fetch",
    "pixel_coordinates",
    "pixel_permutation",
    "read_idx",
    "render_particles",
    "rotate_sequences",
    "rotating_mnist",
]
