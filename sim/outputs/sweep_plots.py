"""A sweep's figures, drawn from its tidy tables: response curves, heat maps, sensitivity bars.

- ``response.png``: each chosen output (a row per gate) against each parameter (a column;
  the four most influential when there are more), the mean at each point with its 95 %
  interval; on a grid, a line per combination of the other parameters' values.
- ``heatmap.png``: for a grid of two parameters, each output's mean over the two, a panel per gate.
- ``sensitivity.png``: per output, Sobol S1 and ST (Morris mu*, a grid's main effect, a Latin
  hypercube's Spearman rho) of each parameter with their intervals (a grid's main effects
  have none), the most influential on top; an input whose interval reaches 0 (not
  significant, sim.experiments.sensitivity) pale.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

MAX_PARAMS = 4  # columns of response.png
MAX_BARS = 15  # parameters in a panel of sensitivity.png
MAX_LINES = 8  # lines per panel of response.png on a grid
BARS = {  # the bars of sensitivity.png per design: (index, label, colour)
    "sobol": [("S1", "first order S1", "tab:blue"), ("ST", "total ST", "tab:orange")],
    "morris": [("mu_star", "mu*", "tab:blue")],
    "grid": [("main_effect", "main effect", "tab:blue")],
    "lhs": [("spearman", "Spearman rho", "tab:blue")],
}
TITLES = {
    "sobol": "Sobol indices (Saltelli design)",
    "morris": "Morris screening (mu*: mean |effect| over the range)",
    "grid": "Main effects (range of the mean over each input's levels); no intervals",
    "lhs": "Spearman's rank correlation with the output",
}


def figures(result) -> list[tuple[str, Callable[[Path], None]]]:
    """(file name, a function drawing it to a path) of each figure the sweep has."""
    out = [("response.png", partial(response, result))]
    d = result.design
    if d.kind == "grid" and len(d.params) == 2 and all(len(p.values) > 1 for p in d.params):
        out.append(("heatmap.png", partial(heatmap, result)))
    if result.sensitivity is not None and not result.sensitivity.empty:
        out.append(("sensitivity.png", partial(sensitivity, result)))
    return out


def _short(name: str) -> str:
    """An input's name as a label, without the keys that say only what kind of item follows
    (gates., stages., demand_steps., random_closures.): km3_4.exit.customs.lanes."""
    parts = [p for p in name.split(".") if p not in ("gates", "stages", "demand_steps", "random_closures")]
    return ".".join(parts)


def _rows(result) -> pd.DataFrame:
    t = result.table
    return t[(t["direction"] == "all") & (t["stage"] == "") & (t["class"] == "")]


def _shown_params(result, output) -> list[str]:
    names = result.design.names
    sens = result.sensitivity
    if sens is not None and not sens.empty:
        s = sens[(sens.gate == output.gate) & (sens.metric == output.metric)]
        if not s.empty:
            ranked = s.drop_duplicates("param").sort_values("rank")["param"].tolist()
            return ranked[:MAX_PARAMS]
    return names[:MAX_PARAMS]


def response(result, path: Path) -> None:
    """Each output against each (shown) parameter, mean and 95 % interval per point."""
    rows = _rows(result)
    outs = result.outputs
    ncols = min(MAX_PARAMS, len(result.design.names))
    fig, axes = plt.subplots(len(outs), ncols, figsize=(3.4 * ncols + 0.6, 2.3 * len(outs) + 0.8), squeeze=False)
    grid = result.design.kind == "grid"
    for i, o in enumerate(outs):
        sel = rows[(rows.metric == o.metric) & (rows.gate == o.gate)]
        shown = _shown_params(result, o)
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(shown):
                ax.axis("off")
                continue
            p = shown[j]
            others = [q for q in result.design.names if q != p]
            groups = list(sel.groupby(others, sort=True)) if grid and others else [((), sel)]
            if grid and len(groups) <= MAX_LINES:
                for key, g in groups:
                    g = g.sort_values(p)
                    label = ", ".join(f"{_short(q)}={v:g}" for q, v in zip(others, np.atleast_1d(key))) or None
                    ax.errorbar(g[p], g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]],
                                marker="o", ms=3, capsize=2, lw=1, label=label)
                if others and i == 0:
                    ax.legend(fontsize=6)
            else:
                ax.errorbar(sel[p], sel["mean"], yerr=[sel["mean"] - sel["ci_low"], sel["ci_high"] - sel["mean"]],
                            fmt="o", ms=2, elinewidth=0.5, alpha=0.6, color="tab:blue")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if result.design.params[result.design.names.index(p)].integer:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(_short(p), fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{o.metric}\n{o.gate}", fontsize=7)
    fig.suptitle(f"Sweep of {result.scenario.name}: mean over {result.reps} replications per point, "
                 "with 95 % intervals", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def heatmap(result, path: Path) -> None:
    """A two-parameter grid: each output's mean at every combination, a panel per output."""
    rows = _rows(result)
    px, py = result.design.names
    outs = result.outputs
    ncols = min(3, len(outs))
    nrows = -(-len(outs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows + 0.5), squeeze=False)
    for k, o in enumerate(outs):
        ax = axes[k // ncols, k % ncols]
        sel = rows[(rows.metric == o.metric) & (rows.gate == o.gate)]
        grid = sel.pivot_table(index=py, columns=px, values="mean", aggfunc="first")
        im = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns], fontsize=7)
        ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index], fontsize=7)
        ax.set_xlabel(_short(px), fontsize=7)
        ax.set_ylabel(_short(py), fontsize=7)
        ax.set_title(f"{o.metric} @ {o.gate}", fontsize=8, loc="left")
        fig.colorbar(im, ax=ax, shrink=0.85).ax.tick_params(labelsize=7)
    for k in range(len(outs), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    fig.suptitle(f"Sweep of {result.scenario.name}: mean over {result.reps} replications", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def sensitivity(result, path: Path) -> None:
    """Per output, the indices of its most influential parameters with their intervals."""
    sens = result.sensitivity
    outs = [o for o in result.outputs if not sens[(sens.gate == o.gate) & (sens.metric == o.metric)].empty]
    ncols = min(3, len(outs))
    nrows = -(-len(outs) // ncols)
    n_bars = min(MAX_BARS, len(result.design.names))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 0.28 * n_bars * nrows + 1.2 * nrows + 0.4),
                             squeeze=False)
    kind = result.design.kind
    pairs = BARS[kind]
    for k, o in enumerate(outs):
        ax = axes[k // ncols, k % ncols]
        s = sens[(sens.gate == o.gate) & (sens.metric == o.metric)]
        params = s.drop_duplicates("param").sort_values("rank")["param"].tolist()[:n_bars][::-1]
        y = np.arange(len(params))
        h = 0.8 / len(pairs)
        for m, (index, label, color) in enumerate(pairs):
            v = s[s["index"] == index].set_index("param").reindex(params)
            at = y + (m - (len(pairs) - 1) / 2) * h
            bars = ax.barh(at, v["estimate"], height=h, color=color, label=label)
            for bar, flag in zip(bars, v["significant"].astype(object)):
                if pd.notna(flag) and not flag:  # its interval reaches 0: it may not matter at all
                    bar.set_alpha(0.35)
            # the interval from its ends, not as +- errors: a hypercube's rho is not centred in its
            # interval, and an estimate outside its index's range lies outside its cut interval
            ok = v["ci_low"].notna().to_numpy() & v["ci_high"].notna().to_numpy()
            if ok.any():
                ax.hlines(at[ok], v["ci_low"][ok], v["ci_high"][ok], color="0.15", lw=0.7)
        ax.set_yticks(y, [_short(p) for p in params], fontsize=6)
        ax.axvline(0, color="0.3", lw=0.6)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{o.metric} @ {o.gate}", fontsize=8, loc="left")
        if k == 0:  # handles of their own: a bar of the first input may be pale
            ax.legend(handles=[Patch(color=color, label=label) for _i, label, color in pairs], fontsize=7,
                      loc="lower right")
    for k in range(len(outs), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    from ..experiments.sensitivity import tested_inputs
    from .text import interval_words

    words = interval_words(kind, tested_inputs(result.design))
    fig.suptitle(f"{TITLES[kind]}{'; ' + words + ', pale: not significant' if words else ''}; "
                 f"{result.design.points} points x {result.reps} replications", fontsize=9,
                 wrap=True)  # one panel is narrower than the title
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
