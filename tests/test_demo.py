"""The demo's embedded configuration and its printed summary (the full run is `nox -s demo`)."""

from __future__ import annotations

from oscsim.config import parse_config
from oscsim.demo import demo_config, format_report


def test_embedded_configuration_is_valid():
    config = parse_config(demo_config())
    assert config.network_parameters().grid == (64, 64)


def test_summary_shows_medians_with_their_spread():
    report = {
        "speed": {"median": 1.5, "q25": 1.25, "q75": 2.0, "iqr": 0.75},
        "direction_deg": {"median": 179.0, "q25": 170.0, "q75": -172.0, "iqr": 18.0},
        "percent_waves": 96.44,
    }
    lines = format_report(report).splitlines()
    assert " ".join(lines[0].split()) == "wave speed 1.5 cells/time (quartiles 1.25 to 2)"
    assert "(quartiles 170 to -172, arc 18 deg)" in lines[1]
    assert lines[2].split()[-2:] == ["96.4", "%"]
