"""Summary statistics of a replication and across replications, shared by both engines.

Per replication, for each gate x direction and the totals (gate ``all``, direction ``all``):
- ``arrivals``: vehicles that entered the system, the initial backlog included;
- ``crossings``: vehicles that left the last stage within the horizon;
- ``in_system_end``: vehicles still inside at the horizon's end (arrivals - crossings);
- ``wait_mean_h`` / ``wait_p95_h``: time queued before the stages (acceptance included),
  summed, over the vehicles that crossed and arrived after the warm-up (95th percentiles
  from a fine histogram, to within 0.46 %: see ``sim.flowstats``);
- ``time_in_system_mean_h`` / ``time_in_system_p95_h``: departure - arrival, same vehicles;
- ``queue_max``: most vehicles waiting at once (in the system, not in service);
- queue by hour of day (for the plot): the time-average number waiting in each hour of day;
- ``crossings_per_day``: crossings / days in the horizon;
- ``utilisation`` (per stage): lane-hours busy / (lanes x hours the stage could serve).
Across replications: mean and a 95 % t-interval for the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from .des.engine import FlowRecord
from .inputs import ACCEPTANCE, ReplicationInputs
from .flowstats import BIN_EDGES, BIN_TABLE, N_COUNTS, N_HIST, flow_pass, hist_edges, hist_quantile
from .queue_profile import candidate_events, queue_summary

ALL = "all"
TIS_BINS_H = np.logspace(-2, 4, 61)  # 36 s to 10,000 h, for the time-in-system histogram
GROUP_METRICS = (
    "arrivals", "crossings", "in_system_end", "wait_mean_h", "wait_p95_h", "time_in_system_mean_h",
    "time_in_system_p95_h", "initial_backlog", "queue_max", "crossings_per_day",
)


def _coarse_of_fine() -> np.ndarray:
    """The TIS_BINS_H bin of each fine histogram bin (values outside go to the end bins)."""
    edges = hist_edges()
    mid = np.sqrt(np.maximum(edges[:-1], 1e-300) * edges[1:])
    mid[0], mid[-1] = 0.0, np.inf
    idx = np.searchsorted(TIS_BINS_H, mid, side="right") - 1
    return np.clip(idx, 0, TIS_BINS_H.size - 2)


_COARSE = _coarse_of_fine()


@dataclass
class ReplicationResult:
    """What one replication hands back: small fixed-size arrays, not per-vehicle records."""

    labels: tuple[tuple[str, str, str, str], ...]  # (gate, direction, metric, stage) of each value
    values: np.ndarray
    daily: dict[tuple[str, str], np.ndarray]  # crossings per day
    queue_by_hour: dict[tuple[str, str], np.ndarray]  # mean queue at each hour of day
    tis_hist: dict[str, np.ndarray]  # time-in-system histogram per gate (and 'all')

    @property
    def rows(self) -> list[tuple]:
        """(gate, direction, metric, stage, value) per value."""
        return [(*lab, float(v)) for lab, v in zip(self.labels, self.values)]


ARRAY_OVERHEAD_BYTES = 250  # an array of a result, its dict entry and key (measured: 234 to 241)
TABLE_BYTES_PER_VALUE = 56  # per_replication's row of a value (six 8-byte columns) and its row in the matrix


def result_bytes(model) -> int:
    """About how many bytes a run holds per replication of this scenario (a ScenarioModel):
    its ReplicationResult (values, crossings per day per group, queue by hour per flow,
    histogram per gate) and its rows of the per-replication table. Measured with tracemalloc
    (chunks of 25 results unpickled, then per_replication): the baseline 72 kB (estimate 74 kB),
    tests/data/tiny.toml 5.7 kB (estimate 6.0 kB)."""
    flows = tuple(model.flows())
    group_list, _, _ = _group_structure(tuple(model.gates), flows)
    n_stages = sum(len(model.gates[g].spec(d).stages) for g, d in flows)
    n_labels = n_stages + len(group_list) * len(GROUP_METRICS)
    n_hist = sum(1 for _g, d, _k in group_list if d == ALL)
    arrays = [(n_labels, 1), (model.horizon.days, len(group_list)), (24, len(flows)), (TIS_BINS_H.size - 1, n_hist)]
    values = sum(size * count for size, count in arrays)
    n_arrays = sum(count for _size, count in arrays)
    return 8 * values + ARRAY_OVERHEAD_BYTES * n_arrays + TABLE_BYTES_PER_VALUE * n_labels


def _groups(gate_order, flow_keys):
    """(gate, direction, flow keys) of every reported group: each flow, each gate, each
    direction, everything."""
    gates = sorted({g for g, _ in flow_keys}, key=list(gate_order).index)
    for g in gates:
        for d in ("exit", "entry"):
            if (g, d) in flow_keys:
                yield g, d, [(g, d)]
        yield g, ALL, [k for k in flow_keys if k[0] == g]
    for d in ("exit", "entry"):
        keys = [k for k in flow_keys if k[1] == d]
        if keys:
            yield ALL, d, keys
    yield ALL, ALL, list(flow_keys)


@lru_cache(maxsize=64)
def _group_structure(gate_order: tuple, flow_keys: tuple):
    """The reported groups, and which flows each distinct group sums (the same in every
    replication of a scenario): groups with the same flows (a one-direction gate and its
    total, say) are computed once; same[g] is group g's row of membership."""
    group_list = list(_groups(gate_order, list(flow_keys)))
    listed = np.array([[k in keys for k in flow_keys] for _g, _d, keys in group_list])
    membership, same = np.unique(listed, axis=0, return_inverse=True)
    membership.setflags(write=False)
    return group_list, membership, same.ravel()


def replication_metrics(rep: ReplicationInputs, records: list[FlowRecord]) -> ReplicationResult:
    days = rep.model.horizon.days
    H, warm = rep.horizon_h, rep.warmup_h
    n_flows = len(records)
    labels: list[tuple] = []
    values: list[float] = []
    counts = np.zeros((n_flows, N_COUNTS))
    day = np.zeros((n_flows, days))
    wait_h = np.zeros((n_flows, N_HIST))
    tis_h = np.zeros((n_flows, N_HIST))
    backlog = np.zeros(n_flows)
    n_buckets = int(H)
    if n_buckets != H:
        raise ValueError(f"the horizon must be whole hours for the queue buckets, not {H} h")
    plus, net, area = np.zeros((n_flows, n_buckets)), np.zeros((n_flows, n_buckets)), np.zeros((n_flows, n_buckets))
    warm_parts = np.zeros((n_flows, 2))
    instant = [np.array([name == ACCEPTANCE for name in r.inputs.stage_names]) for r in records]  # no time
    for fi, rec in enumerate(records):
        f = rec.inputs
        busy = np.zeros(rec.start.shape[1])
        flow_pass(f.arrival, rec.start, rec.end, instant[fi], warm, H, days, counts[fi], day[fi], busy,
                  wait_h[fi], tis_h[fi], plus[fi], net[fi], area[fi], warm_parts[fi], BIN_TABLE, BIN_EDGES)
        backlog[fi] = f.n_backlog
        for k, name in enumerate(f.stage_names):
            if name == ACCEPTANCE:
                continue
            capacity = f.lanes[k] * f.calendar.open_hours()
            labels.append((f.gate, f.direction, "utilisation", name))
            values.append(busy[k] / capacity if capacity > 0 else np.nan)

    flow_keys = tuple((r.inputs.gate, r.inputs.direction) for r in records)
    group_list, membership, same = _group_structure(tuple(rep.model.gates), flow_keys)
    def events_in(slot):
        # events per bucket: the joining ones (plus) and the starts (plus - net)
        sizes = np.rint((2 * plus - net)[:, slot >= 0].sum(axis=1)).astype(np.int64)
        return [candidate_events(r.inputs.arrival, r.start, r.end, inst, slot, H, m)
                for r, inst, m in zip(records, instant, sizes)]

    peaks, hour_mean = queue_summary(plus, net, area, warm_parts, membership, H, warm, events_in)
    w = membership.astype(float)  # groups x flows: a group's sums are one product
    c, g_wait, g_tis, g_day, g_backlog = w @ counts, w @ wait_h, w @ tis_h, w @ day, w @ backlog
    steady = np.where(c[:, 2] > 0, c[:, 2], np.nan)
    table = np.empty((len(membership), len(GROUP_METRICS)))
    table[:, 0], table[:, 1], table[:, 2] = c[:, 0], c[:, 1], c[:, 0] - c[:, 1]
    table[:, 3], table[:, 4] = c[:, 3] / steady, [hist_quantile(h, 0.95) for h in g_wait]
    table[:, 5], table[:, 6] = c[:, 4] / steady, [hist_quantile(h, 0.95) for h in g_tis]
    table[:, 7], table[:, 8], table[:, 9] = g_backlog, peaks, c[:, 1] / days
    table = table[same]
    daily, tis_hist = {}, {}
    for gi, (g, d, _keys) in enumerate(group_list):
        labels.extend((g, d, m, "") for m in GROUP_METRICS)
        daily.setdefault((g, d), g_day[same[gi]])
        if d == ALL:
            tis_hist[g] = np.bincount(_COARSE, weights=g_tis[same[gi]], minlength=TIS_BINS_H.size - 1)
    return ReplicationResult(
        labels=_interned(tuple(labels)), values=np.concatenate([values, table.ravel()]), daily=daily,
        queue_by_hour={k: hour_mean[i] for i, k in enumerate(flow_keys)}, tis_hist=tis_hist,
    )


_LABELS: dict[tuple, tuple] = {}


def _interned(labels: tuple) -> tuple:
    """One shared labels tuple per structure, so a chunk of replications pickles it once."""
    return _LABELS.setdefault(labels, labels)


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


def _matrix(results: list[ReplicationResult]) -> tuple[tuple, np.ndarray]:
    """The labels shared by all replications and their values (replications x labels)."""
    labels = results[0].labels
    if any(r.labels != labels for r in results):
        raise ValueError("replications report different metrics; they come from different scenarios")
    return labels, np.vstack([r.values for r in results])


def summarise(results: list[ReplicationResult]) -> pd.DataFrame:
    """The tidy summary: gate, direction, metric, stage, mean, ci_low, ci_high, std, n."""
    labels, m = _matrix(results)
    out = []
    for j, lab in enumerate(labels):
        v = m[:, j]
        mean, lo, hi = t_interval(v)
        n = int(np.sum(~np.isnan(v)))
        std = float(np.nanstd(v, ddof=1)) if n > 1 else np.nan
        out.append((*lab, mean, lo, hi, std, n))
    return pd.DataFrame(out, columns=["gate", "direction", "metric", "stage", "mean", "ci_low", "ci_high", "std", "n"])


def per_replication(results: list[ReplicationResult]) -> pd.DataFrame:
    """Every replication's value of every metric, for tests and further analysis."""
    labels, m = _matrix(results)
    lab = pd.DataFrame(list(labels), columns=["gate", "direction", "metric", "stage"])
    reps = m.shape[0]
    out = pd.concat([lab] * reps, ignore_index=True)
    out["value"] = m.ravel()
    out["rep"] = np.repeat(np.arange(reps), len(labels))
    return out


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
