"""An optimisation's figure, drawn from its trials table: ``front.png``, every trial's lever cost
against its performance (the front's second axis), the feasible ones apart from the others, the
Pareto front joined, the recommended trial marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

BILLION = 1e9  # VND: the cost axis is in billions of VND a year


def draw_front(trials: pd.DataFrame, performance: pd.Series, performance_label: str, recommended: int | None,
               title: str, path, performance_ci: tuple[pd.Series, pd.Series] | None = None) -> None:
    """The figure from the trials table (trials.csv) and each trial's performance; the front's
    trials with their performance's 95 % interval (performance_ci: its ends) and, where a
    lever's cost is a range, what the levers may cost (every range at its low end, its high end)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if "vnd" in performance_label:  # a cost, in billions as the cost axis
        performance = performance / BILLION
        performance_ci = None if performance_ci is None else tuple(x / BILLION for x in performance_ci)
        performance_label = f"{performance_label}, billion VND"
    cost = trials["lever_cost_vnd_per_year"] / BILLION
    ok = trials["feasible"].astype(bool)
    ax.scatter(cost[~ok], performance[~ok], s=14, color="0.7", label="misses a constraint")
    ax.scatter(cost[ok], performance[ok], s=18, color="tab:blue", label="meets every constraint")
    front = trials["front"].astype(bool)
    order = cost[front].sort_values().index
    ax.plot(cost[order], performance[order], "-o", color="tab:orange", ms=5, label="Pareto front")
    if len(order):
        x_low = trials.get("lever_cost_vnd_per_year_low", trials["lever_cost_vnd_per_year"]) / BILLION
        x_high = trials.get("lever_cost_vnd_per_year_high", trials["lever_cost_vnd_per_year"]) / BILLION
        y_low, y_high = performance_ci if performance_ci is not None else (performance, performance)
        ax.errorbar(cost[order], performance[order], fmt="none", ecolor="tab:orange", elinewidth=0.8, capsize=2,
                    xerr=[(cost - x_low)[order].clip(lower=0), (x_high - cost)[order].clip(lower=0)],
                    yerr=[(performance - y_low)[order].clip(lower=0), (y_high - performance)[order].clip(lower=0)],
                    label="95 % interval; levers' cost range")
    if recommended is not None:
        at = trials.index[trials["trial"] == recommended]
        ax.scatter(cost[at], performance[at], s=160, marker="*", color="tab:red", zorder=5, label="recommended")
    ax.set_xlabel("levers' cost, billion VND a year (capital annualised + operating)")
    ax.set_ylabel(performance_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def front_figure(result, path: Path) -> None:
    """front.png of a finished optimisation (sim.outputs.optimise.OptimiseResult)."""
    from ..experiments.optimise import performance_values

    s = result.setup
    rec = None if result.recommended is None else int(result.recommended["trial"])
    draw_front(result.trials, performance_values(s, result.trials), s.performance_label, rec,
               f"Optimisation of {s.scenario.name}: {len(result.trials)} trials of {s.reps} replications "
               f"(means), objective {s.objective.label}", path,
               tuple(performance_values(s, result.trials, stat) for stat in ("ci_low", "ci_high")))
