"""Summary statistics of a replication and across replications, shared by both engines.

Per replication, for each gate x direction and the totals (gate ``all``, direction ``all``):
- ``arrivals``: vehicles that entered the system, the initial backlog included;
- ``crossings``: vehicles that left the last stage within the horizon;
- ``in_system_end``: vehicles still inside at the horizon's end (arrivals - crossings);
- ``wait_mean_h`` / ``wait_p95_h``: time queued before the stages (acceptance included),
  summed, over the vehicles that crossed and arrived after the warm-up;
- ``time_in_system_mean_h`` / ``time_in_system_p95_h``: departure - arrival, same vehicles;
- ``queue_max``: most vehicles waiting at once (in the system, not in service);
- queue by hour of day (for the plot): the time-average number waiting in each hour of day;
- ``crossings_per_day``: crossings / days in the horizon;
- ``utilisation`` (per stage): lane-hours busy / (lanes x hours the stage could serve).
Across replications: mean and a 95 % t-interval for the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .des.engine import FlowRecord
from .inputs import ACCEPTANCE, ReplicationInputs
from .queue_profile import group_peaks, queue_profile, sort_events

ALL = "all"
TIS_BINS_H = np.logspace(-2, 4, 61)  # 36 s to 10,000 h, for the time-in-system histogram
_TIS_BINS_PER_DECADE = 10


def _log_histogram(hours: np.ndarray) -> np.ndarray:
    """Counts in the TIS_BINS_H bins (values outside go to the end bins), by arithmetic, not search."""
    idx = np.floor((np.log10(np.maximum(hours, 1e-300)) + 2) * _TIS_BINS_PER_DECADE).astype(np.int64)
    return np.bincount(np.clip(idx, 0, TIS_BINS_H.size - 2), minlength=TIS_BINS_H.size - 1)


@dataclass
class ReplicationResult:
    """What one replication hands back: small tables, not per-vehicle records."""

    rows: list[tuple]  # (gate, direction, metric, stage, value)
    daily: dict[tuple[str, str], np.ndarray]  # crossings per day
    queue_by_hour: dict[tuple[str, str], np.ndarray]  # mean queue at each hour of day
    tis_hist: dict[str, np.ndarray]  # time-in-system histogram per gate (and 'all')


def _queue_events(rec: FlowRecord) -> tuple[np.ndarray, np.ndarray]:
    """Times (sorted) and +1/-1 steps of the number of vehicles waiting (in the system, not in service)."""
    f = rec.inputs
    k = rec.start.shape[1]
    times = [f.arrival, rec.start.ravel()]
    deltas = [np.ones(f.n), -np.ones(rec.start.size)]
    if k > 1:
        ends = rec.end[:, :-1].ravel()
        times.append(ends)
        deltas.append(np.ones(ends.size))
    t = np.concatenate(times)
    d = np.concatenate(deltas)
    ok = ~np.isnan(t)
    return sort_events(t[ok], d[ok])


def _vehicle_stats(arrival, depart, wait, warmup_h) -> dict[str, float]:
    crossed = ~np.isnan(depart)
    steady = crossed & (arrival >= warmup_h)
    tis = (depart - arrival)[steady]
    w = wait[steady]

    def q(x, p):
        return float(np.quantile(x, p)) if x.size else np.nan

    return {
        "arrivals": float(arrival.size),
        "crossings": float(crossed.sum()),
        "in_system_end": float((~crossed).sum()),
        "wait_mean_h": float(w.mean()) if w.size else np.nan,
        "wait_p95_h": q(w, 0.95),
        "time_in_system_mean_h": float(tis.mean()) if tis.size else np.nan,
        "time_in_system_p95_h": q(tis, 0.95),
    }


def replication_metrics(rep: ReplicationInputs, records: list[FlowRecord]) -> ReplicationResult:
    days = rep.model.horizon.days
    H, warm = rep.horizon_h, rep.warmup_h
    rows: list[tuple] = []
    daily, qbh, tis_hist = {}, {}, {}
    per_flow = {}
    flow_peak: dict[tuple[str, str], float] = {}
    for rec in records:
        f = rec.inputs
        depart = rec.depart
        served = np.nansum(rec.end - rec.start, axis=1)
        wait = depart - f.arrival - served
        ev = _queue_events(rec)
        per_flow[(f.gate, f.direction)] = (f.arrival, depart, wait, ev, f.n_backlog)
        done = depart[~np.isnan(depart)]
        daily[(f.gate, f.direction)] = np.bincount(
            np.minimum((done // 24).astype(int), days - 1), minlength=days
        ).astype(float)
        flow_peak[(f.gate, f.direction)], qbh[(f.gate, f.direction)] = queue_profile(*ev, warm, H)
        for k, name in enumerate(f.stage_names):
            if name == ACCEPTANCE:
                continue
            began = rec.start[:, k]
            ok = ~np.isnan(began)
            finish = np.where(np.isnan(rec.end[:, k]), H, rec.end[:, k])
            busy = float(np.sum(np.minimum(finish[ok], H) - began[ok]))
            capacity = f.lanes[k] * f.calendar.open_hours()
            rows.append((f.gate, f.direction, "utilisation", name, busy / capacity if capacity > 0 else np.nan))

    def groups():
        gates = sorted({g for g, _ in per_flow}, key=list(rep.model.gates).index)
        for g in gates:
            for d in ("exit", "entry"):
                if (g, d) in per_flow:
                    yield g, d, [(g, d)]
            yield g, ALL, [k for k in per_flow if k[0] == g]
        for d in ("exit", "entry"):
            keys = [k for k in per_flow if k[1] == d]
            if keys:
                yield ALL, d, keys
        yield ALL, ALL, list(per_flow)

    group_list = list(groups())
    flow_keys = list(per_flow)
    multi = [i for i, (_g, _d, keys) in enumerate(group_list) if len(keys) > 1]
    membership = np.full((len(flow_keys), max(1, len(multi))), -1, dtype=np.int64)
    for col, gi in enumerate(multi):
        for key in group_list[gi][2]:
            membership[flow_keys.index(key), col] = col
    offsets = np.cumsum([0] + [per_flow[k][3][0].size for k in flow_keys])
    peaks = group_peaks(
        np.concatenate([per_flow[k][3][0] for k in flow_keys]),
        np.concatenate([per_flow[k][3][1] for k in flow_keys]),
        offsets, membership, max(1, len(multi)),
    )
    done: dict[tuple, tuple[dict, np.ndarray | None]] = {}  # groups with the same flows: once
    needs_hist = {tuple(keys) for _g, d, keys in group_list if d == ALL}
    for gi, (g, d, keys) in enumerate(group_list):
        if tuple(keys) not in done:
            parts = [per_flow[k] for k in keys]
            arrival = np.concatenate([p[0] for p in parts])
            depart = np.concatenate([p[1] for p in parts])
            wait = np.concatenate([p[2] for p in parts])
            values = _vehicle_stats(arrival, depart, wait, warm)
            values["initial_backlog"] = float(sum(p[4] for p in parts))
            values["queue_max"] = float(peaks[multi.index(gi)]) if gi in multi else flow_peak[keys[0]]
            values["crossings_per_day"] = values["crossings"] / days
            hist = None
            if tuple(keys) in needs_hist:
                steady = ~np.isnan(depart) & (arrival >= warm)
                hist = _log_histogram((depart - arrival)[steady])
            done[tuple(keys)] = values, hist
        values, hist = done[tuple(keys)]
        rows.extend((g, d, m, "", v) for m, v in values.items())
        if d == ALL:
            tis_hist[g] = hist
        if (g, d) not in daily:
            daily[(g, d)] = sum(daily[k] for k in keys)
    return ReplicationResult(rows=rows, daily=daily, queue_by_hour=qbh, tis_hist=tis_hist)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of the mean; NaN bounds for fewer than two values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if v.size < 2:
        return m, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def summarise(results: list[ReplicationResult]) -> pd.DataFrame:
    """The tidy summary: gate, direction, metric, stage, mean, ci_low, ci_high, std, n."""
    long = per_replication(results)
    out = []
    for (g, d, m, s), grp in long.groupby(["gate", "direction", "metric", "stage"], sort=False):
        v = grp["value"].to_numpy()
        mean, lo, hi = t_interval(v)
        n = int(np.sum(~np.isnan(v)))
        std = float(np.nanstd(v, ddof=1)) if n > 1 else np.nan
        out.append((g, d, m, s, mean, lo, hi, std, n))
    return pd.DataFrame(out, columns=["gate", "direction", "metric", "stage", "mean", "ci_low", "ci_high", "std", "n"])


def per_replication(results: list[ReplicationResult]) -> pd.DataFrame:
    """Every replication's value of every metric, for tests and further analysis."""
    frames = [
        pd.DataFrame(r.rows, columns=["gate", "direction", "metric", "stage", "value"]).assign(rep=i)
        for i, r in enumerate(results)
    ]
    return pd.concat(frames, ignore_index=True)


def daily_table(results: list[ReplicationResult], start) -> pd.DataFrame:
    keys = list(results[0].daily)
    days = len(next(iter(results[0].daily.values())))
    dates = pd.date_range(start, periods=days, freq="D")
    out = []
    for g, d in keys:
        arr = np.vstack([r.daily[(g, d)] for r in results])
        mean = arr.mean(axis=0)
        if arr.shape[0] > 1:
            half = stats.t.ppf(0.975, arr.shape[0] - 1) * arr.std(axis=0, ddof=1) / np.sqrt(arr.shape[0])
        else:
            half = np.full(days, np.nan)
        out.append(pd.DataFrame({
            "date": dates.date, "gate": g, "direction": d,
            "crossings_mean": mean, "ci_low": mean - half, "ci_high": mean + half,
        }))
    return pd.concat(out, ignore_index=True)


def queue_by_hour_table(results: list[ReplicationResult]) -> pd.DataFrame:
    out = []
    for g, d in results[0].queue_by_hour:
        arr = np.vstack([r.queue_by_hour[(g, d)] for r in results]).mean(axis=0)
        out.append(pd.DataFrame({"gate": g, "direction": d, "hour": np.arange(24), "queue_mean": arr}))
    return pd.concat(out, ignore_index=True)


def tis_hist_table(results: list[ReplicationResult]) -> pd.DataFrame:
    out = []
    for g in results[0].tis_hist:
        counts = np.sum([r.tis_hist[g] for r in results], axis=0)
        out.append(pd.DataFrame({
            "gate": g, "bin_low_h": TIS_BINS_H[:-1], "bin_high_h": TIS_BINS_H[1:], "vehicles": counts,
        }))
    return pd.concat(out, ignore_index=True)
