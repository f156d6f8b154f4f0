"""Runs ``oscsim simulate`` with a signal or a kill arranged at a chosen moment.

Usage: ``python tests/reliability_driver.py MODE CONFIG OUT``. MODE is one of

- ``term-in-write`` / ``int-in-write``: SIGTERM / SIGINT arrive while the netCDF file is
  being written (inside ``to_netcdf``, where h5py runs);
- ``term-in-zarr``: SIGTERM while a zarr store is being written;
- ``term-in-integration``: SIGTERM during the integration;
- ``hang-in-write``: the write stops half way, prints ``READY`` and waits to be killed.

The exit status is ``oscsim``'s.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import xarray as xr


def _signal_during(method_name: str, signum: int) -> None:
    original = getattr(xr.Dataset, method_name)

    def write_then_signal(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        os.kill(os.getpid(), signum)  # arrives while the write is still in progress
        time.sleep(0.5)
        return result

    setattr(xr.Dataset, method_name, write_then_signal)


def main() -> int:
    mode, config, out = sys.argv[1:4]
    if mode == "term-in-write":
        _signal_during("to_netcdf", signal.SIGTERM)
    elif mode == "int-in-write":
        _signal_during("to_netcdf", signal.SIGINT)
    elif mode == "term-in-zarr":
        _signal_during("to_zarr", signal.SIGTERM)
    elif mode == "term-in-integration":
        import oscsim.simulation

        original = oscsim.simulation.integrate

        def integrate_then_signal(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5.0)
            return original(*args, **kwargs)

        oscsim.simulation.integrate = integrate_then_signal
    elif mode == "hang-in-write":
        original = xr.Dataset.to_netcdf

        def hang(self, path, *args, **kwargs):
            with open(path, "wb") as handle:
                handle.write(b"\x89HDF\r\n\x1a\n half written")
            print("READY", flush=True)
            time.sleep(600)

        xr.Dataset.to_netcdf = hang
    else:
        raise SystemExit(f"unknown mode {mode}")
    from oscsim.cli import main as oscsim_main

    return oscsim_main(["simulate", config, "--out", out])


if __name__ == "__main__":
    raise SystemExit(main())
