"""Every figure, drawn from the tidy tables a run writes (never from engine internals)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .findings import gate_rows  # noqa: E402
from .formats import metric  # noqa: E402

ALL = "all"


def _date_axis(ax) -> None:
    """Month ticks on a calendar axis: set once, they spare matplotlib's automatic date
    locator, which takes most of a date plot's drawing time."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _queue_panel(ax, title: str) -> None:
    """A gate's panel of a queue plot: from 0 (a swing between 43 and 49 is not a large one)."""
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel("vehicles\nwaiting")
    ax.grid(alpha=0.3)


def warm_up() -> None:
    """Draw and render a small figure once: the fonts and renderer a first figure loads (about a
    third of a second), done before drawing processes are forked, so that they inherit them."""
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1], label="x")
    ax.set_title("warm-up")
    ax.legend()
    fig.canvas.draw()
    plt.close(fig)


def _gate_names(names: dict[str, str], gate: str) -> str:
    return names.get(gate, gate)


def queue_by_hour(table: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Mean number of vehicles waiting at each hour of day, one panel per gate, over the days
    each gate and direction opens at all (a day it is closed throughout is left out)."""
    gates = list(dict.fromkeys(table["gate"]))
    fig, axes = plt.subplots(len(gates), 1, figsize=(8, 2.2 * len(gates) + 0.6), sharex=True, squeeze=False)
    for ax, g in zip(axes[:, 0], gates):
        for d, grp in table[table["gate"] == g].groupby("direction", sort=False):
            ax.step(grp["hour"], grp["queue_mean"], where="post", label=d)
        ax.set_title(_gate_names(names, g), fontsize=9, loc="left")
        ax.set_ylabel("vehicles\nwaiting")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("hour of day (local time)")
    axes[-1, 0].set_xticks(range(0, 25, 3))
    fig.suptitle("Mean queue by hour of day, over the days the gate opens (mean over replications)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TIME_TICKS_H = [(1 / 6, "10 min"), (1, "1 h"), (6, "6 h"), (24, "1 day"), (24 * 7, "1 week"),
                (24 * 30, "1 month"), (24 * 182, "6 months"), (24 * 365, "1 year"), (24 * 365 * 4, "4 years")]
# which time ticks give way where labels would overlap: the round ones are kept first
TICK_PRIORITY = ["1 h", "1 day", "1 week", "1 month", "1 year", "10 min", "6 h", "6 months", "4 years"]


def _time_axis(ax, lo_x: float, hi_x: float, fontsize: float) -> None:
    """A log time axis from lo_x to hi_x hours, labelled in minutes, hours, days and months."""
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ticks = [(x, lab) for x, lab in TIME_TICKS_H if lo_x <= x <= hi_x]
    ax.set_xticks([x for x, _ in ticks], [lab for _, lab in ticks], fontsize=fontsize)
    ax.minorticks_off()


def _thin_time_ticks(ax) -> None:
    """Drop the time labels that would overlap another (the rounder ones stay, TICK_PRIORITY), with
    the axis where the figure's layout has put it: call it after tight_layout."""
    from matplotlib.font_manager import FontProperties

    renderer = ax.figure.canvas.get_renderer()
    gap = renderer.points_to_pixels(4)
    spans = {}
    for x, label in zip(ax.get_xticks(), ax.get_xticklabels()):
        width = renderer.get_text_width_height_descent(label.get_text(), FontProperties(size=label.get_fontsize()),
                                                       ismath=False)[0]
        centre = ax.transData.transform((x, 1.0))[0]
        spans[label.get_text()] = (x, centre - width / 2 - gap / 2, centre + width / 2 + gap / 2)
    kept = []
    for name in sorted(spans, key=lambda n: TICK_PRIORITY.index(n) if n in TICK_PRIORITY else len(TICK_PRIORITY)):
        _x, lo, hi = spans[name]
        if all(hi <= spans[k][1] or lo >= spans[k][2] for k in kept):
            kept.append(name)
    kept.sort(key=lambda n: spans[n][0])
    ax.set_xticks([spans[n][0] for n in kept], kept)


def time_in_system(table: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Share of vehicles that crossed within a given time of arriving, per gate (cumulative), on
    a time axis labelled in hours, days and months."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    lo_x, hi_x = np.inf, 0.0
    for g, grp in table[table["gate"] != ALL].groupby("gate", sort=False):
        total = grp["vehicles"].sum()
        if total == 0:
            continue
        share = np.cumsum(grp["vehicles"].to_numpy()) / total
        edge = grp["bin_high_h"].to_numpy()
        keep = np.isfinite(edge)
        ax.plot(edge[keep], share[keep], label=_gate_names(names, g), drawstyle="steps-post")
        used = edge[keep][grp["vehicles"].to_numpy()[keep] > 0]
        if used.size:
            lo_x, hi_x = min(lo_x, used.min() / 10 ** 0.1), max(hi_x, used.max())
    if hi_x > 0:
        _time_axis(ax, max(lo_x, 1 / 60), hi_x * 1.5, 10)
    else:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time from arrival to crossing (log scale)")
    ax.set_ylabel("share of vehicles that crossed\nwithin that time")
    ax.set_title("Time from arrival to crossing, per gate", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if hi_x > 0:
        _thin_time_ticks(ax)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def crossings_per_day(daily: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Crossings per day over the horizon: each gate (both directions) and the total, with 95 % CI."""
    sel = daily[(daily["direction"] == ALL) & (daily["metric"] == "crossings")]
    gates = list(dict.fromkeys(sel["gate"]))
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
    tot = sel[sel["gate"] == ALL]
    dates = pd.to_datetime(tot["date"])
    axes[0].plot(dates, tot["mean"], color="black", lw=1, label="all gates")
    axes[0].fill_between(dates, tot["ci_low"], tot["ci_high"], color="grey", alpha=0.35, lw=0, label="95 % CI")
    axes[0].set_ylabel("crossings / day")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].grid(alpha=0.3)
    for g in gates:
        if g == ALL:
            continue
        grp = sel[sel["gate"] == g]
        d = pd.to_datetime(grp["date"])
        line, = axes[1].plot(d, grp["mean"], lw=0.9, label=_gate_names(names, g))
        axes[1].fill_between(d, grp["ci_low"], grp["ci_high"], color=line.get_color(), alpha=0.2, lw=0)
    axes[1].set_ylabel("crossings / day")
    axes[1].legend(fontsize=7, loc="upper left", ncol=2)
    axes[1].grid(alpha=0.3)
    for ax in axes:
        ax.set_ylim(bottom=0)
    _date_axis(axes[-1])
    fig.suptitle("Vehicles crossing per day (mean over replications, 95 % CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def queue_by_date(daily: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Vehicles waiting on each calendar day, one panel per gate (both directions): the day's
    mean with the replications' 5-95 % band, and the number waiting at the day's end."""
    sel = daily[(daily["direction"] == ALL) & (daily["gate"] != ALL)]
    gates = list(dict.fromkeys(sel["gate"]))
    fig, axes = plt.subplots(len(gates), 1, figsize=(10, 1.9 * len(gates) + 0.8), sharex=True, squeeze=False)
    for ax, g in zip(axes[:, 0], gates):
        grp = sel[sel["gate"] == g]
        mean = grp[grp["metric"] == "queue_mean"]
        end = grp[grp["metric"] == "queue_end"]
        dates = pd.to_datetime(mean["date"])
        ax.fill_between(dates, mean["p05"], mean["p95"], color="C0", alpha=0.25, lw=0,
                        label="5-95 % of replications")
        ax.plot(dates, mean["mean"], color="C0", lw=1, label="mean waiting over the day")
        ax.plot(pd.to_datetime(end["date"]), end["mean"], color="C3", lw=0.8, ls="--", label="waiting at day's end")
        _queue_panel(ax, _gate_names(names, g))
    axes[0, 0].legend(fontsize=7, loc="upper right")
    _date_axis(axes[-1, 0])
    fig.suptitle("Vehicles waiting by calendar day (mean over replications)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def calibration_fit(cal, path: Path) -> None:
    """Per target: the observed value against the prior's and the posterior's simulated values
    (means and 90 % bands), fit targets with their tolerance band, validation targets marked."""
    targets = cal.targets.targets
    post = cal.ensemble
    cols = min(4, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 0.4, 3.1 * rows + 0.4), squeeze=False)
    for ax, t in zip(axes.ravel(), targets):
        for x, (label, vals, color) in enumerate([("prior", cal.prior_simulated[t.name].to_numpy(), "0.6"),
                                                   ("posterior", post[f"_sim_{t.name}"].to_numpy(), "C0")]):
            lo, hi = np.quantile(vals, [0.05, 0.95])
            m = vals.mean()
            # max(0, ...): where every value is the same, a quantile may lie a rounding error past the mean
            ax.errorbar([x], [m], yerr=[[max(0.0, m - lo)], [max(0.0, hi - m)]], fmt="o", color=color, capsize=6,
                        label=f"{label} (90 %)")
        ax.axhline(t.observed, color="C3", lw=1.5, label="observed")
        if t.use == "fit":
            ax.axhspan(t.observed * (1 - t.tolerance), t.observed * (1 + t.tolerance), color="C3", alpha=0.12,
                       label="tolerance")
        ax.set_xticks([0, 1], ["prior", "posterior"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{t.name}\n({'fit' if t.use == 'fit' else 'validation: not fitted'}; {t.unit})", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.ravel()[len(targets):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, loc="best")
    fig.suptitle("Observed against simulated, prior and posterior", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def calibration_marginals(cal, path: Path) -> None:
    """Each fitted input: its prior range against the posterior (weighted histogram)."""
    ident = cal.identification().set_index("input")
    names = list(cal.names)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 1.9 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        lo, hi = ident.loc[name, "prior_low"], ident.loc[name, "prior_high"]
        bins = np.linspace(lo, hi, 25) if hi > lo else 10
        ax.hist(cal.population[name].to_numpy(), bins=bins, weights=cal.weights, density=True, color="C0",
                alpha=0.7, label="posterior")
        ax.axvspan(lo, hi, color="0.85", zorder=0, label="prior range")
        mark = " (pinned down)" if ident.loc[name, "identified"] else ""
        ax.set_title(name + mark, fontsize=6)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


# ------------------------------------------------------------------ comparisons

# the panels of a comparison's plot, each titled by its label in sim.outputs.formats.METRICS (a share's in
# percentage points, as the tables give its difference)
DIFF_METRICS = [("time_in_system_mean_h", metric("time_in_system_mean_h").label, 1),
                ("time_in_system_p95_h", metric("time_in_system_p95_h").label, 1),
                ("waiting_truck_hours", metric("waiting_truck_hours").label + "\n(thousands)", 1e-3),
                ("held_by_limit_share", metric("held_by_limit_share").label + "\n(percentage points)", 100),
                ("cost_total_vnd", metric("cost_total_vnd").label, metric("cost_total_vnd").scale)]


def compare_differences(table: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Per gate (both directions) and alternative: the paired difference to the base with its
    95 % interval, one panel per headline metric; a filled marker where the interval excludes 0."""
    t = gate_rows(table)
    t = t[(t["direction"] == ALL) & (t["stage"] == "") & (t["class"] == "")]
    alts = list(dict.fromkeys(t["scenario"]))
    gates = [g for g in dict.fromkeys(t["gate"]) if g != ALL] + [ALL]
    metrics = [(m, lab, scale) for m, lab, scale in DIFF_METRICS if (t["metric"] == m).any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 1.8, 0.42 * len(gates) * len(alts) + 1.6),
                             sharey=True, squeeze=False)
    step = 0.8 / max(len(alts), 1)
    for ax, (metric, label, scale) in zip(axes[0], metrics):
        for a, alt in enumerate(alts):
            sel = t[(t["scenario"] == alt) & (t["metric"] == metric)].set_index("gate")
            for y, g in enumerate(gates):
                if g not in sel.index:
                    continue
                r = sel.loc[g]
                yy = y + (a - (len(alts) - 1) / 2) * step
                mean = r["diff_mean"] * scale
                lo = mean - r["diff_ci_low"] * scale if pd.notna(r["diff_ci_low"]) else 0
                hi = r["diff_ci_high"] * scale - mean if pd.notna(r["diff_ci_high"]) else 0
                ax.errorbar([mean], [yy], xerr=[[lo], [hi]], fmt="o", color=f"C{a}", capsize=3, ms=5,
                            mfc=f"C{a}" if r["excludes_zero"] else "white", label=alt if y == 0 else None)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        # figures as they are, never as an offset from a number written at the axis' end
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlabel("alternative − base")
    axes[0, 0].set_yticks(range(len(gates)), [_gate_names(names, g) for g in gates], fontsize=8)
    axes[0, 0].invert_yaxis()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(len(alts), 4), frameon=False)
    fig.suptitle("Difference to the base on common random numbers (95 % interval; filled: excludes 0)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_time_in_system(table: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Share of vehicles that crossed within a given time, one panel per gate, a line per scenario."""
    gates = [g for g in dict.fromkeys(table["gate"]) if g != ALL]
    cols = 2
    rows = -(-len(gates) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.8 * rows + 0.6), squeeze=False)
    for ax, g in zip(axes.ravel(), gates):
        hi_x = 0.0
        for s, (scen, grp) in enumerate(table[table["gate"] == g].groupby("scenario", sort=False)):
            total = grp["vehicles"].sum()
            if total == 0:
                continue
            edge = grp["bin_high_h"].to_numpy()
            share = np.cumsum(grp["vehicles"].to_numpy()) / total
            keep = np.isfinite(edge)
            ax.plot(edge[keep], share[keep], drawstyle="steps-post", color=f"C{s}", label=scen)
            used = edge[keep][grp["vehicles"].to_numpy()[keep] > 0]
            hi_x = max(hi_x, used.max() if used.size else 0.0)
        if hi_x > 0:
            _time_axis(ax, 1 / 60, hi_x * 1.5, 7)
        else:
            ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(_gate_names(names, g), fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(gates):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.supylabel("share of vehicles that crossed within that time", fontsize=9)
    fig.suptitle("Time from arrival to crossing, per scenario", fontsize=10)
    fig.tight_layout()
    for ax in axes.ravel()[:len(gates)]:
        if ax.get_xticks().size:
            _thin_time_ticks(ax)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _queue_lines_by_date(table: pd.DataFrame, names: dict[str, str], path: Path, columns: tuple[str, str, str],
                         alpha: float, panel, title: str) -> None:
    """The mean number waiting each calendar day (queue_mean, both directions), one panel per
    gate, a line per scenario of the table: columns (line, band's low, band's high)."""
    line, low, high = columns
    sel = table[(table["direction"] == ALL) & (table["gate"] != ALL) & (table["metric"] == "queue_mean")]
    gates = list(dict.fromkeys(sel["gate"]))
    fig, axes = plt.subplots(len(gates), 1, figsize=(10, 1.9 * len(gates) + 0.8), sharex=True, squeeze=False)
    for ax, g in zip(axes[:, 0], gates):
        for s, (scen, grp) in enumerate(sel[sel["gate"] == g].groupby("scenario", sort=False)):
            dates = pd.to_datetime(grp["date"])
            ax.fill_between(dates, grp[low], grp[high], color=f"C{s}", alpha=alpha, lw=0)
            ax.plot(dates, grp[line], color=f"C{s}", lw=1, label=scen)
        panel(ax, _gate_names(names, g))
    axes[0, 0].legend(fontsize=7, loc="upper right")
    _date_axis(axes[-1, 0])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _difference_panel(ax, title: str) -> None:
    """A gate's panel of a difference plot: the zero line drawn (a difference has either sign)."""
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel("difference in\nvehicles waiting")
    ax.grid(alpha=0.3)


def compare_queue_differences(differences: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Each alternative's paired difference to the base (alternative - base) in the mean number
    waiting on each calendar day, one panel per gate (both directions), with its 95 % interval
    as a band (from compare_daily.csv: the interval of the replications' paired daily
    differences)."""
    _queue_lines_by_date(differences, names, path, ("diff_mean", "diff_ci_low", "diff_ci_high"), 0.25,
                         _difference_panel, "Mean number waiting each day: alternative - base, paired by replication "
                                            "(bands: 95 % interval)")


def corridor_shares(daily: pd.DataFrame, names: dict[str, str], path: Path) -> None:
    """Each gate's share of its corridor's crossings over the calendar (a week at a time: a day
    at a gate that clears in batches swings too much to read), a panel per direction, a line per
    gate and scenario (the base solid, each alternative dashed): where the corridor's traffic
    went. ``daily``: the comparison's stacked daily table (scenario, date, gate, direction,
    metric, mean) of the corridor's gates, with a ``corridor`` column naming it."""
    table = daily[daily["metric"] == "crossings"].copy()
    table["week"] = pd.to_datetime(table["date"]).dt.to_period("W").dt.start_time
    weekly = table.groupby(["scenario", "direction", "week", "gate"], sort=False)["mean"].sum()
    total = weekly.groupby(level=["scenario", "direction", "week"], sort=False).transform("sum")
    share = (100 * weekly / total.where(total > 0)).rename("share").reset_index()
    directions = list(dict.fromkeys(share["direction"]))
    scenarios = list(dict.fromkeys(daily["scenario"]))
    gates = list(dict.fromkeys(share["gate"]))
    colours = {g: f"C{i}" for i, g in enumerate(gates)}
    fig, axes = plt.subplots(len(directions), 1, figsize=(10, 2.6 * len(directions) + 1.0), sharex=True,
                             squeeze=False)
    styles = ["-", "--", ":", "-."]  # the base solid, each alternative a dash of its own
    for ax, d in zip(axes[:, 0], directions):
        for k, s in enumerate(scenarios):
            for g in gates:
                line = share[(share["scenario"] == s) & (share["direction"] == d) & (share["gate"] == g)]
                ax.plot(line["week"], line["share"], color=colours[g], linestyle=styles[min(k, len(styles) - 1)],
                        linewidth=1.4 if k == 0 else 1.1, label=f"{_gate_names(names, g)} ({s})")
        ax.set_title(d, fontsize=9, loc="left")
        ax.set_ylabel("share of the\ncorridor's crossings, %")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        _date_axis(ax)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    rows = -(-len(labels) // 2)
    legend_h = 0.16 * rows + 0.2  # inches: a legend row of 7-point text, and a margin
    fig.set_figheight(fig.get_figheight() + legend_h)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    corridor = str(daily["corridor"].iloc[0]) if "corridor" in daily and len(daily) else ""
    fig.suptitle(f"{corridor}: each gate's share of the corridor's crossings by week\n"
                 f"{scenarios[0]} solid" + "".join(f"; {s} {('dashed', 'dotted', 'dash-dot')[min(k, 2)]}"
                                                   for k, s in enumerate(scenarios[1:])), fontsize=10)
    fig.tight_layout(rect=(0, legend_h / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
