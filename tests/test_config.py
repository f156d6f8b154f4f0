"""Configuration: defaults, overrides, one clear error for every bad input (docs/formats.md)."""

from __future__ import annotations

import numpy as np
import pytest

from oscsim import OscsimInputError
from oscsim.config import apply_overrides, load_config, parse_config


def test_defaults_and_design_example_parse() -> None:
    config = parse_config(
        {
            "network": {
                "grid": [32, 32],
                "kernel_position": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                "kernel_velocity": [[0.0] * 3] * 3,
            },
            "initial": {"kind": "gaussian", "center": [16, 16]},
        }
    )
    params = config.network_parameters()
    assert params.kernel_position.shape == (1, 1, 3, 3)
    assert params.kernel_position[0, 0, 1, 1] == -4.0
    np.testing.assert_allclose(config.solver.frame_times()[:3], [0.0, 0.1, 0.2])
    assert config.solver.n_frames == 101
    assert parse_config(config.to_dict()) == config


def test_overrides_parse_toml_values(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[network]\ngrid = [8]\nkernel_size = 3\n")
    config = load_config(path, ["network.gamma=0.5", "solver.method=dopri5", "network.grid=[9]"])
    assert config.network.gamma == 0.5
    assert config.solver.method == "dopri5"
    assert config.network.grid == [9]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"network": {"colour": 1}}, "unknown key network.colour"),
        ({"netwrk": {}}, r"unknown section \[netwrk\]"),
        ({"network": {"grid": "32x32"}}, "network.grid must be"),
        ({"network": {"grid": [4, 4, 4]}}, "network.grid must be"),
        ({"network": {"channels": 1.5}}, "network.channels must be an integer"),
        ({"network": {"kernel_size": 4}}, "network.kernel_size must be odd"),
        ({"network": {"kernel_position": [1.0, 2.0], "grid": [8]}}, "even size"),
        ({"network": {"grid": [2, 8]}}, "smaller than network.kernel_size"),
        ({"network": {"gamma": -1.0}}, "network.gamma must be a number >= 0"),
        ({"network": {"epsilon": -0.1}}, "network.epsilon must be a number >= 0"),
        ({"network": {"coupling": "ring"}}, "network.coupling must be one of"),
        ({"network": {"activation": "relu"}}, "network.activation must be one of"),
        ({"solver": {"dt": -0.01}}, "solver.dt must be a number > 0"),
        ({"solver": {"dt": "fast"}}, "solver.dt must be a number > 0"),
        ({"solver": {"method": "rk5"}}, "solver.method must be one of"),
        ({"solver": {"backend": "numba", "method": "dopri8"}}, "not available with solver.backend"),
        ({"solver": {"save_every": 0}}, "solver.save_every must be an integer >= 1"),
        ({"initial": {"kind": "file"}}, "needs initial.path"),
        ({"initial": {"center": [1, 2, 3]}}, "initial.center must have 2 entries"),
        ({"output": {"path": "run.csv"}}, "output.path must end in"),
        (
            {"network": {"kernel_position": [[0.0] * 3] * 3, "kernel_size": 5}},
            "kernel_size is 5",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_named(raw: dict, message: str) -> None:
    with pytest.raises(OscsimInputError, match=message):
        parse_config(raw)


@pytest.mark.parametrize(
    "item, message",
    [
        ("network.gamma", "section.key=value"),
        ("gamma=1", "section.key=value"),
        ("network.bogus=1", "unknown key network.bogus"),
        ("model.x=1", r"unknown section \[model\]"),
    ],
)
def test_bad_overrides(item: str, message: str) -> None:
    with pytest.raises(OscsimInputError, match=message):
        apply_overrides({}, [item])


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(OscsimInputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\n")
    with pytest.raises(OscsimInputError, match="not valid TOML"):
        load_config(bad)


def test_solver_threads_key() -> None:
    """``solver.threads`` (default 1) goes to the numba backend; the torch backend refuses
    any other value instead of ignoring it."""
    base = {"solver": {"backend": "numba"}}
    assert parse_config(base).solver.threads == 1
    assert parse_config({"solver": {"backend": "numba", "threads": 2}}).solver.threads == 2
    with pytest.raises(OscsimInputError, match="solver.threads must be an integer >= 1"):
        parse_config({"solver": {"backend": "numba", "threads": 0}})
    with pytest.raises(OscsimInputError, match="applies to solver.backend = 'numba' only"):
        parse_config({"solver": {"threads": 2}})
