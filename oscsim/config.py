"""Simulation configuration (docs/formats.md): TOML in, validated frozen dataclasses out.

Every key is declared once in `SCHEMA` with its type, default and rule; unknown keys,
wrong types and disallowed values are refused with a message that names the key and what
is allowed. ``--set section.key=value`` overrides parse ``value`` as a TOML value.
"""

from __future__ import annotations

import copy
import json
import math
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oscsim.errors import OscsimInputError, check_choice
from oscsim.parameters import ACTIVATIONS, COUPLINGS, NetworkParameters
from oscsim.solvers.registry import METHODS
from oscsim.stability import DEFAULT_MAX_STATE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

INITIAL_KINDS = ("gaussian", "random", "zeros", "plane_wave", "file")
BACKENDS = ("torch", "numba")
DTYPES = ("float32", "float64")
NUMBA_METHODS = ("euler", "rk4", "imex", "dopri5")
#: A configuration file larger than this is refused (a real one is a few hundred bytes).
MAX_CONFIG_BYTES = 1 << 20


def _number(value: Any) -> bool:
    """A finite int or float (TOML's ``inf`` and ``nan`` are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bound(key: str, value: Any) -> None:
    """A number > 0; ``inf`` switches the bound off."""
    if not (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value > 0
        and not math.isnan(value)
    ):
        raise OscsimInputError(f"{key} must be a number > 0 (inf: no bound), got {value!r}")


def _nonnegative_or_list(key: str, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if not values or not all(_number(v) and v >= 0 and math.isfinite(v) for v in values):
        raise OscsimInputError(f"{key} must be a number >= 0 or a list of them, got {value!r}")


def _positive(key: str, value: Any) -> None:
    if not (_number(value) and value > 0 and math.isfinite(value)):
        raise OscsimInputError(f"{key} must be a number > 0, got {value!r}")


def _one_of(*allowed: str) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        check_choice(key, value, allowed)

    return check


def _int_at_least(low: int) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise OscsimInputError(f"{key} must be an integer >= {low}, got {value!r}")

    return check


def _grid(key: str, value: Any) -> None:
    if not (
        isinstance(value, list)
        and len(value) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise OscsimInputError(
            f"{key} must be [n] (a ring) or [h, w] (a torus) of positive integers, got {value!r}"
        )


def _odd_size(key: str, value: Any) -> None:
    _int_at_least(1)(key, value)
    if value % 2 == 0:
        raise OscsimInputError(f"{key} must be odd (1, 3, 5, …), got {value}")


def _nested_numbers(key: str, value: Any) -> None:
    if value is None:
        return
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise OscsimInputError(f"{key} must be a (nested) list of numbers: {error}") from None
    if array.ndim == 0 or not np.all(np.isfinite(array)):
        raise OscsimInputError(f"{key} must be a (nested) list of finite numbers")


def _number_list(key: str, value: Any) -> None:
    if value is None:
        return
    if not (isinstance(value, list) and value and all(_number(v) for v in value)):
        raise OscsimInputError(f"{key} must be a list of finite numbers, got {value!r}")


def _any_number(key: str, value: Any) -> None:
    if not _number(value):
        raise OscsimInputError(f"{key} must be a finite number, got {value!r}")


def _optional_number(key: str, value: Any) -> None:
    if value is not None and not _number(value):
        raise OscsimInputError(f"{key} must be a finite number, got {value!r}")


def _text(key: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise OscsimInputError(f"{key} must be a string, got {value!r}")


def _bias(key: str, value: Any) -> None:
    if _number(value):
        return
    _nested_numbers(key, value)


Check = Callable[[str, Any], None]

#: section -> key -> (default, check). ``None`` defaults mean "absent / derived".
SCHEMA: dict[str, dict[str, tuple[Any, Check]]] = {
    "network": {
        "grid": ([32, 32], _grid),
        "channels": (1, _int_at_least(1)),
        "coupling": ("local", _one_of(*COUPLINGS)),
        "kernel_size": (3, _odd_size),
        "kernel_position": (None, _nested_numbers),
        "kernel_velocity": (None, _nested_numbers),
        "gamma": (1.0, _nonnegative_or_list),
        "epsilon": (0.1, _nonnegative_or_list),
        "bias": (0.0, _bias),
        "activation": ("tanh", _one_of(*ACTIVATIONS)),
        "seed": (0, _int_at_least(0)),
    },
    "initial": {
        "kind": ("gaussian", _one_of(*INITIAL_KINDS)),
        "amplitude": (1.0, _any_number),
        "width": (2.0, _positive),
        "center": (None, _number_list),
        "wavevector": (None, _number_list),
        "frequency": (None, _optional_number),
        "samples": (1, _int_at_least(1)),
        "seed": (0, _int_at_least(0)),
        "path": (None, _text),
    },
    "solver": {
        "method": ("rk4", _one_of(*METHODS)),
        "dt": (0.01, _positive),
        "t_end": (10.0, _positive),
        "save_every": (10, _int_at_least(1)),
        "backend": ("torch", _one_of(*BACKENDS)),
        "dtype": ("float64", _one_of(*DTYPES)),
        "rtol": (1e-7, _positive),
        "atol": (1e-9, _positive),
        "device": ("cpu", _text),
        "progress": (True, lambda k, v: _check_bool(k, v)),
        "max_state": (DEFAULT_MAX_STATE, _bound),
        "stability_check": (True, lambda k, v: _check_bool(k, v)),
        "threads": (1, _int_at_least(1)),
    },
    "output": {
        "path": ("run.nc", _text),
    },
}


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise OscsimInputError(f"{key} must be true or false, got {value!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: the oscillator network."""

    grid: list[int]
    channels: int
    coupling: str
    kernel_size: int
    kernel_position: Any
    kernel_velocity: Any
    gamma: float | list[float]
    epsilon: float | list[float]
    bias: Any
    activation: str
    seed: int


@dataclass(frozen=True)
class InitialConfig:
    """``[initial]``: the initial state (see `oscsim.initial`)."""

    kind: str
    amplitude: float
    width: float
    center: list[float] | None
    wavevector: list[float] | None
    frequency: float | None
    samples: int
    seed: int
    path: str | None


@dataclass(frozen=True)
class SolverConfig:
    """``[solver]``: method, step, horizon, saving, backend and precision."""

    method: str
    dt: float
    t_end: float
    save_every: int
    backend: str
    dtype: str
    rtol: float
    atol: float
    device: str
    progress: bool
    #: Numba threads of the ``numba`` backend (`oscsim.reference.solve`'s ``threads``);
    #: 1, the default, runs its serial kernels.
    threads: int = 1
    max_state: float = DEFAULT_MAX_STATE
    stability_check: bool = True

    @property
    def n_frames(self) -> int:
        """Saved frames: ``t = 0`` and every ``save_every·dt`` through ``t_end``."""
        return int(math.floor(self.t_end / (self.save_every * self.dt) + 1e-9)) + 1

    def frame_times(self) -> np.ndarray:
        """The saved times ``k·save_every·dt``."""
        return np.arange(self.n_frames) * self.save_every * self.dt


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: where the trajectory goes (``.nc`` or ``.zarr``)."""

    path: str


@dataclass(frozen=True)
class SimulationConfig:
    """A whole, validated simulation configuration."""

    network: NetworkConfig
    initial: InitialConfig
    solver: SolverConfig
    output: OutputConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able) that `parse_config` accepts back."""
        return {
            name: {k: v for k, v in asdict(getattr(self, name)).items() if v is not None}
            for name in SCHEMA
        }

    def to_json(self) -> str:
        """The configuration as JSON (stored in trajectory attrs)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def network_parameters(self) -> NetworkParameters:
        """The network's numbers, kernels not given drawn from ``network.seed``."""
        return build_network_parameters(self.network)


def _kernel_array(key: str, value: Any, net: NetworkConfig) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    d, c = len(net.grid), net.channels
    if net.coupling == "local" and array.ndim == d and c == 1:
        array = array.reshape((1, 1) + array.shape)  # a single-channel k (or k×k) kernel
    if net.coupling in ("local", "locally_connected"):
        k = array.shape[-1]
        if k % 2 == 0:
            raise OscsimInputError(f"network.{key} has even size {k}; kernel sizes must be odd")
        if k != net.kernel_size:
            raise OscsimInputError(
                f"network.{key} has size {k} but network.kernel_size is {net.kernel_size}"
            )
    return array


def build_network_parameters(net: NetworkConfig) -> NetworkParameters:
    """`NetworkParameters` from a ``[network]`` section (kernels not given are random)."""
    if net.coupling == "none" and (
        net.kernel_position is not None or net.kernel_velocity is not None
    ):
        raise OscsimInputError("network.kernel_* must be absent when network.coupling = 'none'")
    try:
        return NetworkParameters.random(
            tuple(net.grid),
            net.channels,
            net.coupling,
            kernel_size=net.kernel_size,
            gamma=np.asarray(net.gamma, dtype=np.float64),
            epsilon=np.asarray(net.epsilon, dtype=np.float64),
            bias=np.asarray(net.bias, dtype=np.float64),
            activation=net.activation,
            rng=net.seed,
            kernel_position=_kernel_array("kernel_position", net.kernel_position, net),
            kernel_velocity=_kernel_array("kernel_velocity", net.kernel_velocity, net),
        )
    except OscsimInputError as error:
        raise OscsimInputError(f"[network] {error}") from None


def _check_known(given: Iterable[str], allowed: Iterable[str], message: str) -> None:
    """Refuse the first name of ``given`` (sorted) not in ``allowed``: ``message`` with it
    in place of ``{}``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise OscsimInputError(message.format(unknown[0]))


def parse_config(raw: Mapping[str, Any]) -> SimulationConfig:
    """Validate a nested mapping (as read from TOML) into a `SimulationConfig`.

    Raises
    ------
    OscsimInputError
        Naming the first unknown or bad key and what is allowed.
    """
    if not isinstance(raw, Mapping):
        raise OscsimInputError(f"a configuration must be a table, got {type(raw).__name__}")
    _check_known(raw, SCHEMA, "unknown section [{}]; allowed sections: " + ", ".join(SCHEMA))
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, Mapping):
            raise OscsimInputError(f"[{section}] must be a table of keys")
        allowed = ", ".join(keys)
        _check_known(
            given, keys, f"unknown key {section}.{{}}; allowed keys in [{section}]: {allowed}"
        )
        values: dict[str, Any] = {}
        for key, (default, check) in keys.items():
            value = copy.deepcopy(given.get(key, default))
            if key in given or value is not None:
                check(f"{section}.{key}", value)
            if isinstance(default, float) and isinstance(value, int):
                value = float(value)
            values[key] = value
        sections[section] = values
    config = SimulationConfig(
        network=NetworkConfig(**sections["network"]),
        initial=InitialConfig(**sections["initial"]),
        solver=SolverConfig(**sections["solver"]),
        output=OutputConfig(**sections["output"]),
    )
    _check_consistency(config)
    return config


def _check_consistency(config: SimulationConfig) -> None:
    net, init, solver = config.network, config.initial, config.solver
    if net.coupling in ("local", "locally_connected") and any(
        g < net.kernel_size for g in net.grid
    ):
        raise OscsimInputError(
            f"network.grid {net.grid} is smaller than network.kernel_size {net.kernel_size}; "
            "every grid side must be at least the kernel size"
        )
    for key in ("center", "wavevector"):
        value = getattr(init, key)
        if value is not None and len(value) != len(net.grid):
            raise OscsimInputError(
                f"initial.{key} must have {len(net.grid)} entries (one per grid axis, in "
                f"the order of network.grid), got {value}"
            )
    if init.kind == "file" and not init.path:
        raise OscsimInputError("initial.kind = 'file' needs initial.path (a trajectory file)")
    if solver.backend == "numba":
        if solver.method not in NUMBA_METHODS:
            raise OscsimInputError(
                f"solver.method {solver.method!r} is not available with solver.backend = "
                f"'numba'; allowed: {', '.join(NUMBA_METHODS)}"
            )
        if solver.dtype != "float64":
            raise OscsimInputError(
                "solver.backend = 'numba' computes in float64: set solver.dtype = 'float64'"
            )
    elif solver.threads != 1:
        raise OscsimInputError(
            f"solver.threads = {solver.threads} applies to solver.backend = 'numba' only; the "
            "torch backend uses torch.set_num_threads (OMP_NUM_THREADS)"
        )
    if solver.t_end < solver.save_every * solver.dt:
        raise OscsimInputError(
            f"solver.t_end = {solver.t_end} is shorter than one saved interval "
            f"(save_every·dt = {solver.save_every * solver.dt}); nothing would be saved"
        )
    if not config.output.path.endswith((".nc", ".zarr")):
        raise OscsimInputError(f"output.path must end in .nc or .zarr, got {config.output.path!r}")
    # Validates kernels, gamma, epsilon and bias shapes now, before any work.
    build_network_parameters(net)


def parse_value(text: str) -> Any:
    """A command-line value as TOML (``0.5``, ``[11, 11]``, ``true``, ``"a b"``); text that
    is not a TOML value, such as the bare word ``rk4``, stays a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(item: str, *, form: str = "key=value") -> tuple[str, Any]:
    """One ``--set KEY=VALUE``: the key (stripped) and the value (`parse_value`).

    The one parser of ``--set`` for every command: ``oscsim simulate`` (``section.key``
    keys, `apply_overrides`), ``oscsim train`` and the experiments (model options).

    Parameters
    ----------
    item
        ``KEY=VALUE``; the value may itself contain ``=``.
    form
        What the command expects, for the error message (e.g. ``"key=value (e.g.
        grid=[11,11])"``).

    Raises
    ------
    OscsimInputError
        ``--set expects {form}, got {item!r}`` when there is no ``=`` or no key.

    Examples
    --------
    >>> parse_override("grid=[11, 11]")
    ('grid', [11, 11])
    >>> parse_override("method = rk4")
    ('method', 'rk4')
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise OscsimInputError(f"--set expects {form}, got {item!r}")
    return key.strip(), parse_value(text.strip())


def parse_overrides(items: Iterable[str] | None, *, form: str = "key=value") -> dict[str, Any]:
    """Several ``--set KEY=VALUE`` (`parse_override`) as a dict; a later key wins."""
    return dict(parse_override(item, form=form) for item in items or [])


_SECTION_FORM = "section.key=value (for example network.gamma=0.5)"


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``section.key=value`` applied (value parsed as TOML)."""
    result = copy.deepcopy(dict(raw))
    for item in overrides:
        name, value = parse_override(item, form=_SECTION_FORM)
        section, dot, key = name.partition(".")
        if not dot or not key:
            raise OscsimInputError(f"--set expects {_SECTION_FORM}, got {item!r}")
        if section not in SCHEMA:
            raise OscsimInputError(
                f"--set {item!r}: unknown section [{section}]; allowed: {', '.join(SCHEMA)}"
            )
        if key not in SCHEMA[section]:
            raise OscsimInputError(
                f"--set {item!r}: unknown key {section}.{key}; allowed keys in [{section}]: "
                f"{', '.join(SCHEMA[section])}"
            )
        result.setdefault(section, {})
        result[section] = dict(result[section])
        result[section][key] = value
    return result


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, with a one-line error for a missing, unsuitable or malformed file.

    Raises
    ------
    OscsimInputError
        If ``path`` does not exist, is not a regular file (a folder, a device, a pipe), is
        larger than `MAX_CONFIG_BYTES`, cannot be read, is not UTF-8 or is not valid TOML.
    """
    source = Path(path)
    name = str(source)
    try:
        info = source.stat()
    except FileNotFoundError:
        raise OscsimInputError(f"config file {name!r} does not exist") from None
    except OSError as error:
        raise OscsimInputError(f"config file {name!r} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise OscsimInputError(f"config file {name!r} is {kind}; give a TOML file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise OscsimInputError(
            f"config file {name!r} is {info.st_size} bytes; a configuration is at most "
            f"{MAX_CONFIG_BYTES} bytes"
        )
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise OscsimInputError(f"config file {name!r} cannot be read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OscsimInputError(
            f"config file {name!r} is not UTF-8 text (byte {error.start}); give a TOML file"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise OscsimInputError(f"config file {name!r} is not valid TOML: {error}") from None


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> SimulationConfig:
    """Read, override and validate a TOML configuration file."""
    return parse_config(apply_overrides(read_toml(path), overrides))
