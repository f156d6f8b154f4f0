"""Figures and an animation of waves (matplotlib, no pyplot state).

Every function takes the real signal (dims ``time``, ``x`` or ``y, x``); figures show one
field — the first index of every other dim (``sample``, ``channel``, …) unless you select
another first, e.g. ``data.sel(sample=3)``. Phases use the cyclic ``twilight`` colormap so
that −π and π look alike. Each function returns a `matplotlib.figure.Figure` (the GIF
writer returns its path); `write_figures` draws them all into a folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from oscsim.analysis import fields
from oscsim.analysis._validate import TIME, SignalInfo, inspect_signal

__all__ = [
    "animate_gif",
    "published_phase_figure",
    "kw_spectrum_plot",
    "phase_map",
    "quiver",
    "snapshots",
    "space_time",
    "write_figures",
]

PHASE_CMAP = "twilight"
SIGNAL_CMAP = "RdBu_r"

# Where a cell's amplitude is below this fraction of the largest amplitude on the grid at
# that time, its phase is drawn grey. A cell the wave has not reached yet still has a
# phase: the analytic signal is taken over the whole recording, so the wave that comes
# later leaks into earlier frames as a faint envelope (in the demo ~1 % of the frame's
# peak ahead of the front, 10–50 % behind it), and that phase belongs to no wave present.
PHASE_AMPLITUDE_FLOOR = 0.02
_NO_PHASE_GREY = "0.6"
_PHASE_SHOWN = matplotlib.colormaps[PHASE_CMAP].with_extremes(bad=_NO_PHASE_GREY)


def _field(data: xr.DataArray) -> tuple[xr.DataArray, SignalInfo, str]:
    """The first field of `data`, its layout, and a label naming the selection."""
    info = inspect_signal(data, check_finite=False)
    picked = {d: 0 for d in info.lead}
    field = data.isel(picked) if picked else data
    label = ", ".join(
        f"{d} {int(np.asarray(data[d][0])) if d in data.coords else 0}" for d in info.lead
    )
    return field.transpose(TIME, *info.space), info, label


def _figure(width: float, height: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _sym_limit(values: np.ndarray) -> float:
    v = float(np.nanpercentile(np.abs(values), 99.5)) if values.size else 1.0
    return v if v > 0 else 1.0


def _time_values(field: xr.DataArray) -> np.ndarray:
    if TIME in field.coords:
        return np.asarray(field[TIME].values, dtype=float)
    return np.arange(field.sizes[TIME], dtype=float)


def _title(name: str, label: str) -> str:
    return f"{name} ({label})" if label else name


def _phase_colorbar(fig: Figure, mappable: Any, ax: Any) -> None:
    cb = fig.colorbar(mappable, ax=ax, ticks=[-math.pi, 0, math.pi])
    cb.ax.set_yticklabels(["−π", "0", "π"])
    cb.set_label(f"phase θ (rad); grey: amplitude < {100 * PHASE_AMPLITUDE_FLOOR:g} % of peak")


def _mask_quiet(analytic: np.ndarray) -> np.ndarray:
    """The phase of ``analytic`` (time, *space), NaN where the amplitude is below
    `PHASE_AMPLITUDE_FLOOR` times that time's largest amplitude on the grid."""
    amplitude = np.abs(analytic)
    peak = amplitude.reshape(amplitude.shape[0], -1).max(axis=1)
    peak = peak.reshape(-1, *([1] * (amplitude.ndim - 1)))
    return np.where(amplitude >= PHASE_AMPLITUDE_FLOOR * peak, np.angle(analytic), np.nan)


def _shown_phase(field: xr.DataArray, band: tuple[float, float] | None) -> np.ndarray:
    """The phase of a (time, *space) field as drawn: NaN (grey) where there is no wave."""
    return _mask_quiet(np.asarray(fields.analytic_signal(field, band=band).values))


def _show_signal(ax: Any, values: np.ndarray, lim: float, **extra: Any) -> Any:
    """The signal as an image in the diverging map, symmetric about 0 up to ``±lim``."""
    return ax.imshow(
        values,
        origin="lower",
        cmap=SIGNAL_CMAP,
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
        **extra,
    )


def _show_phase(ax: Any, ph: np.ndarray, **extra: Any) -> Any:
    """The phase as an image in the cyclic map over (−π, π]."""
    return ax.imshow(
        ph,
        origin="lower",
        cmap=_PHASE_SHOWN,
        vmin=-math.pi,
        vmax=math.pi,
        interpolation="nearest",
        **extra,
    )


def space_time(
    data: xr.DataArray, *, row: int | None = None, band: tuple[float, float] | None = None
) -> Figure:
    """Space–time plot: the signal and its phase over (x, time).

    On a torus, along the row ``y = row`` (the middle row by default). Waves appear as
    stripes; their slope is the speed (cells per time unit).
    """
    field, info, label = _field(data)
    ph = _shown_phase(field, band)
    if info.ndim == 2:
        row = field.sizes["y"] // 2 if row is None else int(row)
        field, ph = field.isel(y=row), ph[:, row]
        label = f"{label}, row y = {row}" if label else f"row y = {row}"
    t = _time_values(field)
    x = np.arange(field.sizes["x"])
    tu = info.time_units
    fig = _figure(11, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    values = np.asarray(field.values, dtype=float)
    lim = _sym_limit(values)
    extent = (x[0] - 0.5, x[-1] + 0.5, t[0], t[-1])
    im = _show_signal(axes[0], values, lim, aspect="auto", extent=extent)
    fig.colorbar(im, ax=axes[0]).set_label(str(data.name or "signal"))
    axes[0].set_title(_title(f"{data.name or 'signal'}", label))
    im = _show_phase(axes[1], ph, aspect="auto", extent=extent)
    _phase_colorbar(fig, im, axes[1])
    axes[1].set_title("instantaneous phase")
    for ax in axes:
        ax.set_xlabel("x (cell)")
    axes[0].set_ylabel(f"time ({tu})")
    return fig


def _frame_indices(n_frames: int, n: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, n_frames - 1, n + 2)[1:-1].round()})


def snapshots(data: xr.DataArray, *, n: int = 4, band: tuple[float, float] | None = None) -> Figure:
    """The signal (top) and its phase (bottom) at `n` evenly spaced times.

    On a ring each snapshot is a curve over x.
    """
    field, info, label = _field(data)
    ph = _shown_phase(field, band)
    t = _time_values(field)
    idx = _frame_indices(field.sizes[TIME], n)
    tu = info.time_units
    values = np.asarray(field.values, dtype=float)
    lim = _sym_limit(values)
    if info.ndim == 1:
        fig = _figure(10, 5)
        axes = fig.subplots(2, 1, sharex=True)
        x = np.arange(field.sizes["x"])
        for i in idx:
            axes[0].plot(x, values[i], label=f"t = {t[i]:.3g} {tu}")
            axes[1].plot(x, ph[i], ".", ms=3)
        axes[0].legend(loc="upper right", fontsize="small")
        axes[0].set_ylabel(str(data.name or "signal"))
        axes[1].set_ylabel("phase θ (rad)")
        axes[1].set_ylim(-math.pi, math.pi)
        axes[1].set_xlabel("x (cell)")
        axes[0].set_title(_title("snapshots", label))
        return fig
    fig = _figure(3.2 * len(idx) + 1.5, 6.4)
    axes = fig.subplots(2, len(idx), squeeze=False)
    for j, i in enumerate(idx):
        im0 = _show_signal(axes[0, j], values[i], lim)
        im1 = _show_phase(axes[1, j], ph[i])
        axes[0, j].set_title(f"t = {t[i]:.3g} {tu}")
        axes[1, j].set_xlabel("x (cell)")
    axes[0, 0].set_ylabel("y (cell)")
    axes[1, 0].set_ylabel("y (cell)")
    fig.colorbar(im0, ax=axes[0, :].tolist()).set_label(str(data.name or "signal"))
    _phase_colorbar(fig, im1, axes[1, :].tolist())
    fig.suptitle(_title(f"{data.name or 'signal'} (top) and phase (bottom)", label))
    return fig


def _time_index(field: xr.DataArray, time: float | None) -> int:
    if time is None:
        return field.sizes[TIME] // 2
    t = _time_values(field)
    return int(np.argmin(np.abs(t - float(time))))


def phase_map(
    data: xr.DataArray, *, time: float | None = None, band: tuple[float, float] | None = None
) -> Figure:
    """The phase over the grid at one time (the middle frame by default).

    On a ring, the phase over (x, time) instead.
    """
    field, info, label = _field(data)
    ph = _shown_phase(field, band)
    tu = info.time_units
    fig = _figure(6.4, 5.2)
    ax = fig.subplots()
    if info.ndim == 1:
        t = _time_values(field)
        extent = (-0.5, field.sizes["x"] - 0.5, t[0], t[-1])
        im = _show_phase(ax, ph, aspect="auto", extent=extent)
        ax.set_xlabel("x (cell)")
        ax.set_ylabel(f"time ({tu})")
        ax.set_title(_title("phase map", label))
    else:
        i = _time_index(field, time)
        t = _time_values(field)
        im = _show_phase(ax, ph[i])
        ax.set_xlabel("x (cell)")
        ax.set_ylabel("y (cell)")
        ax.set_title(_title(f"phase at t = {t[i]:.3g} {tu}", label))
    _phase_colorbar(fig, im, ax)
    return fig


def quiver(
    data: xr.DataArray,
    *,
    time: float | None = None,
    step: int | None = None,
    band: tuple[float, float] | None = None,
) -> Figure:
    """Phase-velocity field at one time: arrows of the direction, coloured by the speed.

    Arrows (every `step` cells; about 24 per side by default) point along v = ω·k/|k|²
    over the phase map; their colour is the speed in cells per time unit (clipped to the
    5th–95th percentile so that a few near-zero wave numbers do not wash it out). On a
    ring: the velocity v_x over x at that time.
    """
    field, info, label = _field(data)
    i = _time_index(field, time)
    t = _time_values(field)
    tu = info.time_units
    a = fields.analytic_signal(field, band=band)
    vel = fields.phase_velocity(a)
    fig = _figure(7.2, 6.0) if info.ndim == 2 else _figure(9, 4)
    ax = fig.subplots()
    if info.ndim == 1:
        vx = np.asarray(vel["v_x"].values)[i]
        x = np.arange(field.sizes["x"])
        ax.axhline(0, color="0.6", lw=0.8)
        ax.plot(x, vx, ".-")
        ax.set_xlabel("x (cell)")
        ax.set_ylabel(f"phase velocity v_x (cell / {tu})")
        ax.set_title(_title(f"phase velocity at t = {t[i]:.3g} {tu}", label))
        finite = vx[np.isfinite(vx)]
        if finite.size:
            lo, hi = np.percentile(finite, [2, 98])
            pad = 0.1 * (hi - lo) + 1e-9
            ax.set_ylim(min(lo, 0) - pad, max(hi, 0) + pad)
        return fig
    ph = _mask_quiet(np.asarray(a.values)[i : i + 1])[0]
    quiet = np.isnan(ph)  # no wave here: no arrow either
    vx = np.where(quiet, np.nan, np.asarray(vel["v_x"].values)[i])
    vy = np.where(quiet, np.nan, np.asarray(vel["v_y"].values)[i])
    ny, nx = ph.shape
    step = int(step) if step else max(1, round(max(ny, nx) / 24))
    ax.imshow(
        ph,
        origin="lower",
        cmap=_PHASE_SHOWN,
        vmin=-math.pi,
        vmax=math.pi,
        alpha=0.55,
        interpolation="nearest",
    )
    yy, xx = np.mgrid[0:ny:step, 0:nx:step]
    u, v = vx[::step, ::step], vy[::step, ::step]
    speed = np.hypot(u, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        uu, vv = u / speed, v / speed
    finite = speed[np.isfinite(speed)]
    lo, hi = np.percentile(finite, [5, 95]) if finite.size else (0.0, 1.0)
    q = ax.quiver(
        xx,
        yy,
        uu,
        vv,
        np.clip(speed, lo, hi),
        cmap="viridis",
        angles="xy",
        scale_units="xy",
        scale=1.0 / (0.8 * step),
        width=0.004,
        pivot="mid",
    )
    fig.colorbar(q, ax=ax).set_label(f"speed (cell / {tu})")
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    ax.set_xlabel("x (cell)")
    ax.set_ylabel("y (cell)")
    ax.set_title(_title(f"phase velocity at t = {t[i]:.3g} {tu}", label))
    return fig


def kw_spectrum_plot(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    report: dict[str, Any] | None = None,
) -> Figure:
    """The k–ω power spectrum, log scale, with the dominant mode marked.

    On a ring: power over (k_x, ω). On a torus: summed over directions, over (|k|, ω).
    With a `report` (from `analysis.wave_report`), its dominant mode is circled and the
    line ω = (median speed)·|k| drawn.
    """
    from oscsim.analysis.spectrum import kw_spectrum

    field, info, label = _field(data)
    power = kw_spectrum(field, band=band)
    tu = info.time_units
    omega = np.asarray(power["omega"].values)
    p = np.asarray(power.values, dtype=float)
    fig = _figure(7.2, 5.4)
    ax = fig.subplots()
    if info.ndim == 1:
        k = np.asarray(power["k_x"].values)
        img, xs, xlabel = p, k, "wave number k_x (rad / cell)"
    else:
        ky, kx = np.meshgrid(power["k_y"].values, power["k_x"].values, indexing="ij")
        kn = np.hypot(ky, kx)
        width = 2 * math.pi / max(info.grid)
        nbins = int(math.ceil(kn.max() / width)) + 1
        idx = np.minimum(np.round(kn / width).astype(int), nbins - 1).ravel()
        img = np.stack([np.bincount(idx, weights=row.ravel(), minlength=nbins) for row in p])
        xs = np.arange(nbins) * width
        xlabel = "wave number |k| (rad / cell)"
    floor = img.max() * 1e-8 if img.max() > 0 else 1.0
    shown = np.log10(np.maximum(img, floor))
    dx = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    dw = (omega[1] - omega[0]) if len(omega) > 1 else 1.0
    im = ax.imshow(
        shown,
        aspect="auto",
        origin="lower",
        cmap="magma",
        interpolation="nearest",
        extent=(xs[0] - dx / 2, xs[-1] + dx / 2, omega[0] - dw / 2, omega[-1] + dw / 2),
        vmin=max(shown.max() - 8, shown.min()),
    )
    fig.colorbar(im, ax=ax).set_label("log₁₀ power")
    if report is not None:
        mode = report.get("dominant_mode") or {}
        kv = mode.get("k") or {}
        if mode.get("omega") is not None and kv.get("x") is not None:
            kpos = kv["x"] if info.ndim == 1 else math.hypot(kv.get("y") or 0.0, kv["x"])
            ax.plot(
                [kpos],
                [mode["omega"]],
                "o",
                mfc="none",
                mec="cyan",
                ms=14,
                mew=2,
                label=f"dominant mode: ω = {mode['omega']:.3g}, |k| = {abs(kpos):.3g}",
            )
        med = (report.get("speed") or {}).get("median")
        if med is not None:
            kk = np.linspace(0, xs[-1] if info.ndim == 2 else max(abs(xs[0]), xs[-1]), 50)
            sign = 1.0
            if info.ndim == 1 and kv.get("x") is not None and kv["x"] < 0:
                sign = -1.0
            ax.plot(
                sign * kk,
                med * kk,
                "--",
                color="white",
                lw=1.2,
                label=f"ω = {med:.3g}·|k| (median speed)",
            )
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(xs[0] - dx / 2, xs[-1] + dx / 2)
    ax.set_ylim(0, omega[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"angular frequency ω (rad / {tu})")
    ax.set_title(_title("space–time power spectrum", label))
    return fig


def animate_gif(
    data: xr.DataArray,
    path: str | Path,
    *,
    frames: int = 60,
    fps: int = 10,
    band: tuple[float, float] | None = None,
) -> Path:
    """Write a GIF of the signal and its phase over time (at most `frames` frames).

    Returns the path written.
    """
    from PIL import Image  # a dependency of matplotlib

    field, info, label = _field(data)
    ph = _shown_phase(field, band)
    values = np.asarray(field.values, dtype=float)
    t = _time_values(field)
    tu = info.time_units
    idx = np.unique(
        np.linspace(0, field.sizes[TIME] - 1, min(frames, field.sizes[TIME])).round().astype(int)
    )
    lim = _sym_limit(values)
    path = Path(path)
    if info.ndim == 2:
        fig = _figure(9, 4.2, dpi=80)
        axes = fig.subplots(1, 2)
        im0 = axes[0].imshow(
            values[idx[0]],
            origin="lower",
            cmap=SIGNAL_CMAP,
            vmin=-lim,
            vmax=lim,
            interpolation="nearest",
        )
        im1 = axes[1].imshow(
            ph[idx[0]],
            origin="lower",
            cmap=_PHASE_SHOWN,
            vmin=-math.pi,
            vmax=math.pi,
            interpolation="nearest",
        )
        fig.colorbar(im0, ax=axes[0]).set_label(str(data.name or "signal"))
        _phase_colorbar(fig, im1, axes[1])
        for ax in axes:
            ax.set_xlabel("x (cell)")
            ax.set_ylabel("y (cell)")

        moving: list[Any] = [im0, im1]

        def update(i: int) -> None:
            im0.set_data(values[i])
            im1.set_data(ph[i])
    else:
        fig = _figure(9, 4.2, dpi=80)
        axes = fig.subplots(2, 1, sharex=True)
        x = np.arange(field.sizes["x"])
        (line,) = axes[0].plot(x, values[idx[0]])
        axes[0].set_ylim(-lim * 1.05, lim * 1.05)
        axes[0].set_ylabel(str(data.name or "signal"))
        scat = axes[1].scatter(
            x, ph[idx[0]], c=ph[idx[0]], cmap=PHASE_CMAP, vmin=-math.pi, vmax=math.pi, s=12
        )
        axes[1].set_ylim(-math.pi * 1.05, math.pi * 1.05)
        axes[1].set_ylabel("phase θ (rad)")
        axes[1].set_xlabel("x (cell)")

        moving = [line, scat]

        def update(i: int) -> None:
            line.set_ydata(values[i])
            scat.set_offsets(np.column_stack([x, ph[i]]))
            scat.set_array(ph[i])

    title = fig.suptitle(_title(f"t = {t[idx[0]]:.3g} {tu}", label))
    # Lay out and draw the still parts once, then redraw only what moves (blitting).
    fig.canvas.draw()
    fig.set_layout_engine("none")
    for artist in (*moving, title):
        artist.set_animated(True)
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):  # _figure attached one
        raise TypeError("animate_gif needs an Agg canvas")
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    images = []
    for i in idx:
        update(int(i))
        title.set_text(_title(f"t = {t[i]:.3g} {tu}", label))
        canvas.restore_region(background)
        for artist in (*moving, title):
            fig.draw_artist(artist)
        rgba = np.asarray(canvas.buffer_rgba())
        images.append(Image.fromarray(rgba[..., :3].copy()))
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=int(round(1000 / fps)),
        loop=0,
        optimize=False,
    )
    return path


def published_phase_figure(data: xr.DataArray) -> Figure:
    """The published way of looking, drawn: phase as hue (`analysis.phase_rgb`) of the
    band-passed, z-scored recording (`analysis.published_phase`), its filter's start-up
    dropped. A torus shows its last frame (of the first index of any other dim); a ring
    shows its space–time phase (time down, cells across)."""
    from oscsim.analysis.published import phase_rgb, published_phase, published_transient

    info = inspect_signal(data, check_finite=False)
    first = {d: 0 for d in info.lead}
    phase = published_phase(data).isel(first).transpose(TIME, *info.space)
    phase = phase.isel({TIME: slice(published_transient(), None)})
    image = phase.values[-1] if info.ndim == 2 else phase.values
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(phase_rgb(image), interpolation="nearest", aspect="auto")
    ax.set_xlabel("x (cell)")
    ax.set_ylabel("y (cell)" if info.ndim == 2 else "frame (after the filter's start-up)")
    ax.set_title("phase, published band-pass 0.2–0.4 Nyquist")
    fig.tight_layout()
    return fig


def write_figures(
    data: xr.DataArray,
    out_dir: str | Path,
    *,
    report: dict[str, Any] | None = None,
    band: tuple[float, float] | None = None,
) -> list[Path]:
    """Draw every figure of `data` into `out_dir` (PNG) plus ``waves.gif``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = inspect_signal(data, check_finite=False)
    drawings = {
        "space_time.png": lambda: space_time(data, band=band),
        "phase_map.png": lambda: phase_map(data, band=band),
        "quiver.png": lambda: quiver(data, band=band),
        "kw_spectrum.png": lambda: kw_spectrum_plot(data, band=band, report=report),
    }
    if info.ndim == 2:
        drawings["snapshots.png"] = lambda: snapshots(data, band=band)
    paths = []
    for name, draw in drawings.items():
        fig = draw()
        fig.savefig(out / name, dpi=110)
        paths.append(out / name)
    paths.append(animate_gif(data, out / "waves.gif", band=band))
    return paths
