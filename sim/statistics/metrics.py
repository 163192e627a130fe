"""Summary statistics of a replication and across replications, shared by both engines.

Per replication, for each gate x direction and the totals (gate ``all``, direction ``all``):
- ``arrivals``: vehicles that entered the system, the initial backlog included;
- ``crossings``: vehicles that left the last stage within the horizon;
- ``in_system_end``: vehicles still inside at the horizon's end (arrivals - crossings - gave_up);
- ``wait_mean_h`` / ``wait_p95_h``: time queued before the stages (acceptance included),
  summed, over the vehicles that crossed and arrived after the warm-up (95th percentiles
  from a fine histogram, to within 0.46 %: see ``sim.statistics.flowstats``);
- ``time_in_system_mean_h`` / ``time_in_system_p95_h``: departure - arrival, same vehicles;
- ``queue_max``: most vehicles waiting at once (in the system, not in service);
- ``queue_mean``: the time-average number of vehicles waiting (in the system, not in service:
  before a stage, for the far side's acceptance, turned away) over the horizon after the
  warm-up, everyone counted: those who crossed, gave up or are still waiting at the end;
- ``waiting_truck_hours``: the vehicle-hours spent waiting within the horizon after the
  warm-up, the same vehicles: ``queue_mean`` x those hours (``waiting_truck_hours()``);
- queue by hour of day (for the plot): the time-average number waiting in each hour of day,
  over the days the flow opens at all (see ``sim.statistics.queue_profile``);
- ``crossings_per_day``: crossings / days in the horizon;
- ``gave_up``: vehicles that gave up waiting within the horizon (a class with a patience:
  ``sim.model.schema.VehicleClass.patience_days``); they are not crossings, and not in the waits;
- ``utilisation`` (per stage): lane-hours busy / (lanes x hours the stage could serve);
- the costs of waiting, in đồng (VND), where the scenario's classes have costs (``COST_METRICS``,
  priced per vehicle by ``sim.statistics.flowstats.flow_pass``): each vehicle's own waiting (the
  waiting of ``waiting_truck_hours``) at its class's truck-hour rate and at its day rates of
  parking and refrigeration, its goods' spoilage from its own days waited, and the vehicles that
  gave up at the cost of giving up, per group and class; ``cost_total_vnd`` is their sum, also
  per day (what was incurred on the day). ``cost_diverted_vnd``: a corridor's trucks that left
  the province, at their class's cost of leaving (a corridor's row, as ``diverted_out``).
Across replications: mean and a 95 % t-interval for the mean.

By calendar month (``MONTHLY_METRICS``, ``monthly_table``), per group: ``crossings`` (those
that crossed in the month), ``queue_mean`` and ``waiting_truck_hours`` (the month's hours after
the warm-up), and ``wait_mean_h`` and ``time_in_system_mean_h`` over the vehicles that crossed
in the month (and arrived after the warm-up), whenever they came: a month's mean wait is that of
its crossings, so a long wait shows in the month it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numba as nb
import numpy as np
import pandas as pd

from ..engines.records import FlowRecord
from ..base.days import calendar_months, month_names
from ..engines.draws import ReplicationInputs, left_by_choice
from ..model.schema import COST_FIELDS
from .flowstats import (BIN_EDGES, BIN_TABLE, COST_PARTS, N_COUNTS, N_HIST, N_MONTHLY, flow_pass, hist_edges,
                        hist_quantile)
from .queue_profile import candidate_events, hours_after_warmup, queue_summary

ALL = "all"
# the time-in-system table (for plots): [0, 36 s), ten bins a decade from 36 s to 10^6 h (beyond
# any valid horizon, see sim.statistics.flowstats), and [10^6 h, inf); its edges are edges of the fine bins
TIS_BINS_H = np.concatenate([[0.0], np.logspace(-2, 6, 81), [np.inf]])
GROUP_METRICS = (
    "arrivals", "crossings", "in_system_end", "wait_mean_h", "wait_p95_h", "time_in_system_mean_h",
    "time_in_system_p95_h", "initial_backlog", "queue_max", "crossings_per_day", "gave_up", "queue_mean",
    "waiting_truck_hours",
)
MONTHLY_METRICS = ("crossings", "queue_mean", "waiting_truck_hours", "wait_mean_h", "time_in_system_mean_h")
# the costs of waiting (VND), per group, class and day: the total, then its components (priced
# per vehicle by sim.statistics.flowstats.flow_pass)
COST_METRICS = ("cost_total_vnd", *COST_PARTS)
DIVERTED_COST = "cost_diverted_vnd"  # a corridor's trucks that left the province, priced
_RATE = {f: j for j, f in enumerate(COST_FIELDS)}
_UNPRICED = np.zeros((0, len(COST_FIELDS)))


def with_total(parts: np.ndarray) -> np.ndarray:
    """Cost components (COST_PARTS along the first axis) with their total first (COST_METRICS)."""
    return np.concatenate([parts.sum(axis=0, keepdims=True), parts])


def _coarse_of_fine() -> np.ndarray:
    """The TIS_BINS_H bin of each fine histogram bin (each fine bin lies inside one)."""
    edges = hist_edges()
    mid = np.sqrt(np.maximum(edges[:-1], 1e-300) * edges[1:])
    mid[0], mid[-1] = 0.0, np.inf
    idx = np.searchsorted(TIS_BINS_H, mid, side="right") - 1
    idx[-1] = TIS_BINS_H.size - 2  # the fine [1e6 h, inf) is the coarse one
    if not (np.all(idx >= 0) and np.all(idx <= TIS_BINS_H.size - 2)):
        raise AssertionError("the time-in-system table must cover the fine histogram")
    return idx


_COARSE = _coarse_of_fine()


@dataclass
class ReplicationResult:
    """What one replication hands back: small fixed-size arrays, not per-vehicle records."""

    labels: tuple[tuple[str, str, str, str, str], ...]  # (gate, direction, metric, stage, class) of each value
    values: np.ndarray
    daily: dict[tuple[str, str], np.ndarray]  # crossings per day, per (gate, direction) group
    daily_queue_mean: dict[tuple[str, str], np.ndarray]  # mean number waiting on each day
    daily_queue_end: dict[tuple[str, str], np.ndarray]  # number waiting at each day's end
    queue_by_hour: dict[tuple[str, str], np.ndarray]  # mean queue at each hour of day, per flow
    tis_hist: dict[str, np.ndarray]  # time-in-system histogram per gate (and 'all')
    inputs: dict[str, float] = field(default_factory=dict)  # the uncertain inputs' values, by name
    # per group (monthly_groups, the daily tables' groups), MONTHLY_METRICS x calendar months
    monthly: np.ndarray | None = None
    monthly_groups: tuple[tuple[str, str], ...] = ()
    # a priced scenario's: per (gate, direction) group, cost_total_vnd incurred on each day
    daily_cost: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # CPU seconds of the thread that ran it, by phase (sim.experiments.experiment.PHASES); not
    # part of the result: the same replication costs what the machine makes it cost
    cpu_s: np.ndarray | None = field(default=None, compare=False)

    @property
    def rows(self) -> list[tuple]:
        """(gate, direction, metric, stage, class, value) per value."""
        return [(*lab, float(v)) for lab, v in zip(self.labels, self.values)]


ARRAY_OVERHEAD_BYTES = 250  # an array of a result, its dict entry and key (measured: 234 to 241)
TABLE_BYTES_PER_VALUE = 28  # per_replication's row of a value, measured with tracemalloc (27 B)


def result_bytes(model) -> int:
    """About how many bytes a run holds per replication of this scenario (a ScenarioModel):
    its ReplicationResult (values; crossings, mean queue and end-of-day queue per day per group,
    in float32; the monthly figures per group; queue by hour per flow; histogram per gate), its
    inputs and its rows of the per-replication table; checked against tracemalloc by the tests."""
    from ..model.plan import stage_layout

    flows = tuple((g, d, tuple(model.gates[g].classes), *_names_acc(stage_layout(model.gates[g].spec(d), d)))
                  for g, d in model.flows())
    costs = is_priced(model)
    lay = _layout(tuple(model.gates), tuple(model.classes), flows, costs)
    n_util = sum(len(names) - (acc >= 0) for *_x, names, acc in flows)
    n_labels = n_util + len(lay.labels) + len(lay.cost_labels) + len(_corridor_layout(corridor_shape(model), costs)[0])
    n_hist = sum(1 for _g, d, _k in lay.group_list if d == ALL)
    n_groups = len(lay.group_list)
    n_months = len(calendar_months(model.horizon.start, model.horizon.days)[1])
    values = (8 * (n_labels + 24 * len(flows) + (TIS_BINS_H.size - 1) * n_hist + len(MONTHLY_METRICS) * n_months
                   * n_groups + costs * model.horizon.days * n_groups)
              + 4 * 3 * model.horizon.days * n_groups)
    n_arrays = 2 + len(flows) + n_hist + (3 + costs) * n_groups
    return values + ARRAY_OVERHEAD_BYTES * n_arrays + TABLE_BYTES_PER_VALUE * n_labels


def is_priced(model) -> bool:
    """Whether a scenario (a ScenarioModel) prices its waiting: its classes have costs (all or
    none, sim.model.schema)."""
    return all(cls.costs is not None for cls in model.classes.values())


def _names_acc(layout: tuple[list[str], int]) -> tuple[tuple[str, ...], int]:
    return tuple(layout[0]), layout[1]


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


# columns of a group's metrics (the per-stage and per-class columns follow)
_MAIN = GROUP_METRICS + ("held_by_limit_share",)
_PER_CLASS = ("crossings", "wait_mean_h", "time_in_system_mean_h", "held_by_limit_share", "gave_up")


@dataclass(frozen=True)
class _Layout:
    """What a replication of a scenario of this shape reports, and where each value comes from:
    the same in every replication, so it is worked out once per shape."""

    group_list: list  # (gate, direction, flow keys) of every reported group
    membership: np.ndarray  # distinct groups x flows
    same: np.ndarray  # each reported group's row of membership
    classes: tuple[str, ...]  # every class, in the scenario's order
    stages: tuple[str, ...]  # every stage name, in order of first appearance
    class_of: tuple[np.ndarray, ...]  # per flow: each of its classes' column in classes
    stage_of: tuple[np.ndarray, ...]  # per flow: each of its stages' column in stages
    labels: tuple  # the group metrics' labels ...
    pick: tuple[np.ndarray, np.ndarray]  # ... and their (distinct group, column) in the group table
    cost_labels: tuple = ()  # the costs' labels (a priced scenario's) ...
    cost_pick: tuple = ()  # ... and their (distinct group, column) in the cost table


def _flow_shape(f) -> tuple:
    return (f.gate, f.direction, tuple(f.classes), tuple(f.stage_names), f.acceptance)


@lru_cache(maxsize=64)
def _layout(gate_order: tuple, all_classes: tuple, flows: tuple, costs: bool = False) -> _Layout:
    flow_keys = tuple((g, d) for g, d, *_ in flows)
    group_list = list(_groups(gate_order, list(flow_keys)))
    listed = np.array([[k in keys for k in flow_keys] for _g, _d, keys in group_list])
    membership, same = np.unique(listed, axis=0, return_inverse=True)
    membership.setflags(write=False)
    same = same.ravel()
    stages = tuple(dict.fromkeys(name for *_, names, _acc in flows for name in names))
    class_of = tuple(np.array([all_classes.index(c) for c in cls], np.int64) for _g, _d, cls, _n, _a in flows)
    stage_of = tuple(np.array([stages.index(n) for n in names], np.int64) for _g, _d, _c, names, _a in flows)
    n_main, n_st = len(_MAIN), len(stages)
    labels, rows, cols = [], [], []
    for gi, (g, d, keys) in enumerate(group_list):
        members = [flows[flow_keys.index(k)] for k in keys]
        has_limit = any(acc >= 0 for *_, acc in members)
        present_stages = {n for *_, names, _a in members for n in names}
        present_classes = {c for _g, _d, cls, _n, _a in members for c in cls}
        cells = [(m, "", "", j) for j, m in enumerate(_MAIN) if has_limit or m != "held_by_limit_share"]
        cells += [("wait_mean_h", st, "", n_main + j) for j, st in enumerate(stages) if st in present_stages]
        for ci, c in enumerate(all_classes):
            if c in present_classes:
                cells += [(m, "", c, n_main + n_st + ci * len(_PER_CLASS) + j) for j, m in enumerate(_PER_CLASS)
                          if has_limit or m != "held_by_limit_share"]
        for metric, stage, vclass, col in cells:
            labels.append((g, d, metric, stage, vclass))
            rows.append(same[gi])
            cols.append(col)
    cost_labels, cost_rows, cost_cols = [], [], []
    for gi, (g, d, keys) in enumerate(group_list if costs else ()):
        # the cost table's columns: the group's COST_METRICS, then each class's
        present = {c for _g, _d, cls, _n, _a in (flows[flow_keys.index(k)] for k in keys) for c in cls}
        for ci, c in enumerate(("", *all_classes)):
            if c == "" or c in present:
                for j, m in enumerate(COST_METRICS):
                    cost_labels.append((g, d, m, "", c))
                    cost_rows.append(same[gi])
                    cost_cols.append(ci * len(COST_METRICS) + j)
    return _Layout(group_list, membership, same, all_classes, stages, class_of, stage_of, tuple(labels),
                   (np.array(rows, np.int64), np.array(cols, np.int64)), tuple(cost_labels),
                   (np.array(cost_rows, np.int64), np.array(cost_cols, np.int64)))


def replication_metrics(rep: ReplicationInputs, records: list[FlowRecord]) -> ReplicationResult:
    days = rep.model.horizon.days
    H, warm = rep.horizon_h, rep.warmup_h
    n_flows = len(records)
    costs = rep.costs is not None
    lay = _layout(tuple(rep.model.gates), tuple(rep.model.classes), tuple(_flow_shape(r.inputs) for r in records),
                  costs)
    n_cls, n_st = len(lay.classes), len(lay.stages)
    # per flow, its sums in the layout of the group table: all classes' counts, each class's
    # counts, the waits for each stage, the initial backlog
    width = N_COUNTS * (1 + n_cls) + n_st + 1
    sums = np.zeros((n_flows, width))
    day = np.zeros((n_flows, days))
    wait_h = np.zeros((n_flows, N_HIST))
    tis_h = np.zeros((n_flows, N_HIST))
    n_buckets = int(H)
    if n_buckets != H:
        raise ValueError(f"the horizon must be whole hours for the queue buckets, not {H} h")
    plus, net, area = np.zeros((n_flows, n_buckets)), np.zeros((n_flows, n_buckets)), np.zeros((n_flows, n_buckets))
    warm_parts = np.zeros((n_flows, 2))
    month_of_day, months = calendar_months(rep.model.horizon.start, days)
    n_months = len(months)
    monthly = np.zeros((n_flows, n_months, N_MONTHLY))
    open_day = np.zeros((n_flows, days), np.bool_)
    # priced: per flow, each of its classes' (in the flow's order, the scenario's classes being
    # as many or more) cost components by day
    cost = np.zeros((n_flows, n_cls if costs else 0, len(COST_PARTS), days))
    util_labels, util_values = [], []
    for fi, rec in enumerate(records):
        f = rec.inputs
        k_stages = rec.start.shape[1]
        counts = np.zeros((len(f.classes), N_COUNTS))
        stage_wait = np.zeros((len(f.classes), k_stages))
        busy = np.zeros(k_stages)
        cal = f.calendar
        day_first = np.searchsorted(cal.ends, 24.0 * np.arange(days), side="right")
        open_day[fi] = cal.open_days(days)
        quota_day = _NO_QUOTA if f.acceptance < 0 else f.quota[f.acceptance]
        flow_pass(f.arrival, f.vclass, rec.start, rec.end, rec.left, f.acceptance, quota_day, warm, H, days, cal.starts,
                  cal.ends, day_first, counts, stage_wait, day[fi], busy, wait_h[fi], tis_h[fi], month_of_day,
                  monthly[fi], plus[fi], net[fi], area[fi], warm_parts[fi], BIN_TABLE, BIN_EDGES,
                  rep.costs[lay.class_of[fi]] if costs else _UNPRICED, cost[fi, :len(f.classes)])
        row = sums[fi]
        row[:N_COUNTS] = counts.sum(axis=0)
        for c_local, c in enumerate(lay.class_of[fi]):
            row[N_COUNTS * (1 + c):N_COUNTS * (2 + c)] = counts[c_local]
        row[N_COUNTS * (1 + n_cls) + lay.stage_of[fi]] = stage_wait.sum(axis=0)
        row[-1] = f.n_backlog
        open_h = cal.open_hours()
        for k, name in enumerate(f.stage_names):
            if k == f.acceptance:
                continue
            capacity = f.lanes[k] * open_h
            if f.lane_calendars[k] is not None:  # each lane by its own calendar
                busy[k], capacity = lane_busy(rec.start[:, k], rec.end[:, k], rec.lane[:, k], f.lane_calendars[k], H)
            util_labels.append((f.gate, f.direction, "utilisation", name, ""))
            util_values.append(busy[k] / capacity if capacity > 0 else np.nan)

    def events_in(slot):
        # events per bucket: the joining ones (plus) and the starts (plus - net)
        sizes = np.rint((2 * plus - net)[:, slot >= 0].sum(axis=1)).astype(np.int64)
        return [candidate_events(r.inputs.arrival, r.start, r.end, r.left, r.inputs.acceptance, slot, H, m)
                for r, m in zip(records, sizes)]

    q = queue_summary(plus, net, area, warm_parts, lay.membership, H, warm, events_in, open_day, month_of_day)
    g, g_wait, g_tis, g_day, g_area = (group_sums(lay.membership, a) for a in (sums, wait_h, tis_h, day, q.month_area))
    g_monthly = group_sums(lay.membership, monthly.reshape(n_flows, -1)).reshape(-1, n_months, N_MONTHLY)
    table = np.full((len(lay.membership), len(_MAIN) + n_st + n_cls * len(_PER_CLASS)), np.nan)
    at = {m: j for j, m in enumerate(_MAIN)}  # each group metric's column
    with np.errstate(invalid="ignore", divide="ignore"):  # no steady crossing: NaN, as the table says
        steady = np.where(g[:, 2] > 0, g[:, 2], np.nan)
        table[:, at["arrivals"]], table[:, at["crossings"]] = g[:, 0], g[:, 1]
        table[:, at["in_system_end"]] = g[:, 0] - g[:, 1] - g[:, 6]
        table[:, at["wait_mean_h"]] = g[:, 3] / steady
        table[:, at["wait_p95_h"]] = [hist_quantile(h, 0.95) for h in g_wait]
        table[:, at["time_in_system_mean_h"]] = g[:, 4] / steady
        table[:, at["time_in_system_p95_h"]] = [hist_quantile(h, 0.95) for h in g_tis]
        table[:, at["initial_backlog"]], table[:, at["queue_max"]] = g[:, -1], q.peaks
        table[:, at["crossings_per_day"]] = g[:, 1] / days
        table[:, at["gave_up"]] = g[:, 6]
        after_h = H - warm
        table[:, at["queue_mean"]] = g_area.sum(axis=1) / after_h
        table[:, at["waiting_truck_hours"]] = waiting_truck_hours(table[:, at["queue_mean"]], after_h)
        table[:, at["held_by_limit_share"]] = g[:, 5] / steady
        first_wait = N_COUNTS * (1 + n_cls)
        table[:, len(_MAIN):len(_MAIN) + n_st] = g[:, first_wait:first_wait + n_st] / steady[:, None]
        for c in range(n_cls):
            cc = g[:, N_COUNTS * (1 + c):N_COUNTS * (2 + c)]
            c_steady = np.where(cc[:, 2] > 0, cc[:, 2], np.nan)
            col = len(_MAIN) + n_st + c * len(_PER_CLASS)
            table[:, col], table[:, col + 1], table[:, col + 2] = cc[:, 1], cc[:, 3] / c_steady, cc[:, 4] / c_steady
            table[:, col + 3] = cc[:, 5] / c_steady
            table[:, col + 4] = cc[:, 6]
    month_table = by_month(g_day, g_area, g_monthly, month_of_day, hours_after_warmup(days, warm, month_of_day))
    daily, queue_mean, queue_end, tis_hist = {}, {}, {}, {}
    for gi, (gate, d, _keys) in enumerate(lay.group_list):
        row = lay.same[gi]
        daily[(gate, d)] = g_day[row].astype(np.float32)  # whole vehicles: exact in float32
        queue_mean[(gate, d)] = q.day_mean[row].astype(np.float32)
        queue_end[(gate, d)] = q.day_end[row].astype(np.float32)
        if d == ALL:
            tis_hist[gate] = np.bincount(_COARSE, weights=g_tis[row], minlength=TIS_BINS_H.size - 1)
    flow_keys = [(r.inputs.gate, r.inputs.direction) for r in records]
    labels, values = tuple(util_labels) + lay.labels, np.concatenate([util_values, table[lay.pick]])
    daily_cost = {}
    if costs:  # per group, each class's costs and the group's (summed over its days: daily.csv adds up to it)
        cost_day = cost.sum(axis=1)
        cost_class = np.zeros((n_flows, n_cls, len(COST_PARTS)))
        for fi, by_class in enumerate(cost.sum(axis=3)):
            cost_class[fi, lay.class_of[fi]] = by_class[:len(lay.class_of[fi])]
        g_cost_day = group_sums(lay.membership, cost_day.reshape(n_flows, -1)).reshape(-1, len(COST_PARTS), days)
        g_cost_class = group_sums(lay.membership, cost_class.reshape(n_flows, -1)).reshape(-1, n_cls, len(COST_PARTS))
        cost_table = np.concatenate([with_total(g_cost_day.sum(axis=2).T).T[:, None],
                                     with_total(g_cost_class.transpose(2, 0, 1)).transpose(1, 2, 0)], axis=1)
        labels, values = labels + lay.cost_labels, np.concatenate([values, cost_table.reshape(len(cost_table), -1)
                                                                   [lay.cost_pick]])
        daily_cost = {(gate, d): g_cost_day[lay.same[gi]].sum(axis=0) for gi, (gate, d, _k) in enumerate(lay.group_list)}
    if rep.model.corridors:  # after every other row: a scenario's other rows read as without its corridors
        diverted_vnd = ({c: rep.costs[j, _RATE["diverted_vnd"]] for j, c in enumerate(lay.classes)} if costs
                        else None)
        # each group's crossings from the group table (its labels are many more than its groups)
        crossings = {(gate, d): float(table[lay.same[gi], at["crossings"]])
                     for gi, (gate, d, _k) in enumerate(lay.group_list)}
        more_labels, more_values = corridor_rows(crossings, corridor_shape(rep.model),
                                                 {**rep.diverted, **left_by_choice(rep, records)}, diverted_vnd)
        labels, values = labels + more_labels, np.concatenate([values, more_values])
    return ReplicationResult(
        labels=_interned(labels), values=values, daily=daily, daily_queue_mean=queue_mean,
        daily_queue_end=queue_end, queue_by_hour={k: q.hour_mean[i] for i, k in enumerate(flow_keys)},
        tis_hist=tis_hist, monthly=month_table[lay.same], daily_cost=daily_cost,
        monthly_groups=_interned(tuple((gate, d) for gate, d, _k in lay.group_list)),
    )


CORRIDOR_METRICS = ("diverted_out", DIVERTED_COST)  # the metrics of rows whose gate column holds a corridor's id


def corridor_shape(model) -> tuple:
    """What a scenario's corridors report (hashable): per corridor its id and, per direction its
    gates handle, those gates and their classes."""
    return tuple((cid, tuple((d, tuple(c.handling(model, d)), tuple(c.classes(model, d)))
                             for d in c.directions(model)))
                 for cid, c in model.corridors.items())


@lru_cache(maxsize=64)
def _corridor_layout(shape: tuple, costs: bool = False) -> tuple[tuple, tuple]:
    """The corridor rows' labels and how each is computed: each gate's corridor_share per
    direction it handles and both, then per direction the diverted_out of all classes and of
    each class, then of both directions; priced (costs), each diverted_out's cost_diverted_vnd
    after it."""
    labels, recipe = [], []
    for cid, directions in shape:
        every = tuple(dict.fromkeys(g for _d, gates, _c in directions for g in gates))
        for g in every:
            for d, gates in [*((d, gates) for d, gates, _c in directions), (ALL, every)]:
                if g in gates:
                    labels.append((g, d, "corridor_share", "", ""))
                    recipe.append(("share", (g, d), tuple((x, d) for x in gates)))
        for d, _gates, classes in directions:
            labels.append((cid, d, "diverted_out", "", ""))
            recipe.append(("diverted", tuple((cid, d, c) for c in classes)))
            for c in classes:
                labels.append((cid, d, "diverted_out", "", c))
                recipe.append(("diverted", ((cid, d, c),)))
        labels.append((cid, ALL, "diverted_out", "", ""))
        recipe.append(("diverted", tuple((cid, d, c) for d, _g, classes in directions for c in classes)))
    if costs:  # each diverted_out's cost after it
        pairs = [pair for lab, how in zip(labels, recipe) for pair in
                 [(lab, how)] + ([((*lab[:2], DIVERTED_COST, *lab[3:]), ("priced", how[1]))]
                                 if how[0] == "diverted" else [])]
        labels, recipe = [lab for lab, _h in pairs], [how for _l, how in pairs]
    return tuple(labels), tuple(recipe)


def crossings_by_group(labels: tuple, values: np.ndarray) -> dict[tuple[str, str], float]:
    """A replication's crossings per (gate, direction) group, from its rows' labels and values."""
    return {lab[:2]: float(x) for lab, x in zip(labels, values) if lab[2:] == ("crossings", "", "")}


def corridor_rows(crossings: dict[tuple[str, str], float], shape: tuple, diverted,
                  diverted_vnd: dict[str, float] | None = None) -> tuple[tuple, np.ndarray]:
    """A replication's corridor rows (the one definition of each), from its crossings per
    (gate, direction) group (crossings_by_group) and its diverted counts ({(corridor, direction,
    class): trucks}; none: 0): ``corridor_share``, a gate's crossings over its corridor's in a
    direction (or both; NaN where the corridor has none), and ``diverted_out``, the trucks that
    left the province instead (to Lạng Sơn) by corridor, direction and class; with
    ``diverted_vnd`` (a priced scenario's cost of a truck that leaves, by class),
    ``cost_diverted_vnd``, those trucks priced."""
    out_labels, recipe = _corridor_layout(shape, diverted_vnd is not None)
    out = np.empty(len(recipe))
    for j, (kind, *args) in enumerate(recipe):
        if kind == "share":
            own, members = args
            total = sum(crossings[m] for m in members)
            out[j] = crossings[own] / total if total > 0 else np.nan
        elif kind == "diverted":
            out[j] = sum(diverted.get(k, 0) for k in args[0])
        else:  # "priced"
            out[j] = sum(diverted.get(k, 0) * diverted_vnd.get(k[2], 0.0) for k in args[0])
    return out_labels, out


def waiting_truck_hours(queue_mean, hours):
    """The vehicle-hours spent waiting over a span: the time-average number waiting times its
    hours (the one definition of waiting_truck_hours, overall and by month)."""
    return queue_mean * hours


def by_month(g_day, g_area, g_monthly, month_of_day, month_hours) -> np.ndarray:
    """Per distinct group, MONTHLY_METRICS x months: crossings (of the days in each month), the
    mean number waiting and the vehicle-hours waiting after the warm-up (NaN for a month wholly
    in it), the mean wait and time in system of the steady vehicles that crossed in the month."""
    n_months = month_hours.size
    crossings = np.stack([np.bincount(month_of_day, weights=row, minlength=n_months) for row in g_day])
    with np.errstate(invalid="ignore", divide="ignore"):
        hours = np.where(month_hours > 0, month_hours, np.nan)
        queue = g_area / hours
        steady = np.where(g_monthly[:, :, 0] > 0, g_monthly[:, :, 0], np.nan)
        columns = {"crossings": crossings, "queue_mean": queue,
                   "waiting_truck_hours": waiting_truck_hours(queue, hours),
                   "wait_mean_h": g_monthly[:, :, 1] / steady, "time_in_system_mean_h": g_monthly[:, :, 2] / steady}
    return np.stack([columns[m] for m in MONTHLY_METRICS], axis=1)


def lane_busy(start: np.ndarray, end: np.ndarray, lane: np.ndarray, calendars, horizon_h: float) -> tuple[float, float]:
    """Lane-hours busy within each lane's own opening (a service that runs past its lane's
    closing counts up to it) and the lane-hours open, for a stage whose lanes have calendars."""
    busy = 0.0
    for j, cal in enumerate(calendars):
        sel = (lane == j) & (start < horizon_h)
        s = start[sel]
        e = np.where(np.isnan(end[sel]), horizon_h, end[sel])
        iv = np.searchsorted(cal.ends, s, side="right")  # the open interval each service started in
        closes = np.where(iv < cal.ends.size, cal.ends[np.minimum(iv, cal.ends.size - 1)], np.inf)
        busy += float(np.sum(np.minimum(e, closes) - s))
    return busy, sum(cal.open_hours() for cal in calendars)


@nb.njit(cache=True)
def group_sums(membership, per_flow):
    """Per group, the sum of its flows' rows (membership: groups x flows, per_flow: flows x m).
    A loop, not a matrix product: a product would call BLAS, whose threads then spin beside
    the other workers (and the sums are exact either way: counts of whole vehicles)."""
    n_groups, n_flows = membership.shape
    out = np.zeros((n_groups, per_flow.shape[1]))
    for g in range(n_groups):
        for f in range(n_flows):
            if membership[g, f]:
                out[g] += per_flow[f]
    return out


_NO_QUOTA = np.zeros(0, np.int64)
_LABELS: dict[tuple, tuple] = {}


def _interned(labels: tuple) -> tuple:
    """One shared labels tuple per structure, so a chunk of replications pickles it once."""
    return _LABELS.setdefault(labels, labels)


SHARES = ("utilisation", "held_by_limit_share", "corridor_share")  # metrics in [0, 1]; every other one is >= 0
SUMMARY_COLUMNS = ["gate", "direction", "metric", "stage", "class", "mean", "ci_low", "ci_high", "p05", "p95",
                   "std", "n"]


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of the mean; NaN bounds for fewer than two values."""
    d = describe(np.asarray(values, dtype=float)[:, None], level=level)
    return float(d["mean"][0]), float(d["ci_low"][0]), float(d["ci_high"][0])


BLOCK_VALUES = 1 << 20  # describe works on column blocks of at most this many values (8 MB of floats)


def describe(m: np.ndarray, level: float = 0.95, low: np.ndarray | float | None = None,
             high: np.ndarray | float | None = None, spread: bool = True) -> dict[str, np.ndarray]:
    """Per column of m (replications x values), over its non-NaN replications: see _describe.
    A large m goes a block of columns at a time, so that the temporaries stay small (a column's
    figures do not depend on the other columns: the same numbers, bit for bit). spread False:
    without p05 and p95 (sorting every column is most of the work; a paired difference's
    table has no use for them)."""
    m = np.asarray(m, dtype=float)
    if m.ndim != 2 or m.size <= BLOCK_VALUES or m.shape[1] < 2:
        return _describe(m, level, low, high, spread)
    # blocks of two columns or more: numpy sums a single column pairwise, a wider block row by
    # row as it does the whole matrix (the same order, so the same bits)
    step = max(2, BLOCK_VALUES // m.shape[0])
    cuts = list(range(0, m.shape[1], step))
    if m.shape[1] - cuts[-1] < 2:
        cuts.pop()
    ends = cuts[1:] + [m.shape[1]]

    def cut(bound, i, j):
        return bound[i:j] if isinstance(bound, np.ndarray) and bound.ndim else bound

    parts = [_describe(m[:, i:j], level, cut(low, i, j), cut(high, i, j), spread) for i, j in zip(cuts, ends)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _describe(m: np.ndarray, level: float = 0.95, low: np.ndarray | float | None = None,
              high: np.ndarray | float | None = None, spread: bool = True) -> dict[str, np.ndarray]:
    """Per column of m (replications x values), over its non-NaN replications: the mean, a
    two-sided t-interval of the mean (NaN for fewer than two), the 5th and 95th percentiles of
    the replications (their spread), the standard deviation and the count. low / high: the
    range the values lie in; the interval of the mean is cut to it (the mean of values >= 0 is
    >= 0, so a bound below 0 says nothing), the values themselves are never changed."""
    from scipy.special import stdtrit  # the t quantile (scipy.stats would add a second to start-up)

    m = np.asarray(m, dtype=float)
    ok = ~np.isnan(m)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, m, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, m - mean, 0.0)
        std = np.where(n > 1, np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1)), np.nan)
        half = np.where(n > 1, stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2) * std / np.sqrt(np.maximum(n, 1)),
                        np.nan)
    lo, hi = mean - half, mean + half
    if low is not None:
        lo = np.where(np.isnan(lo), lo, np.maximum(lo, low))
    if high is not None:
        hi = np.where(np.isnan(hi), hi, np.minimum(hi, high))
    if not spread:
        return {"mean": mean, "ci_low": lo, "ci_high": hi, "std": std, "n": n}
    p05, p95 = (np.full(m.shape[1:], np.nan) for _ in range(2))
    # np.quantile is vectorised, nanquantile loops over the columns: the columns without NaN
    # (most) go the first way, the others the second (each column's figures the same either way)
    full = n == m.shape[0]
    some = (n > 0) & ~full
    if full.any():
        p05[full], p95[full] = np.quantile(m[:, full], [0.05, 0.95], axis=0)
    if some.any():
        p05[some], p95[some] = np.nanquantile(m[:, some], [0.05, 0.95], axis=0)
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "p05": p05, "p95": p95, "std": std, "n": n}


def _matrix(results: list[ReplicationResult]) -> tuple[tuple, np.ndarray]:
    """The labels shared by all replications and their values (replications x labels)."""
    labels = results[0].labels
    if any(r.labels != labels for r in results):
        raise ValueError("replications report different metrics; they come from different scenarios")
    return labels, np.vstack([r.values for r in results])


def metric_range(metrics) -> tuple[np.ndarray, np.ndarray]:
    """The range of each metric's values: [0, 1] for shares, [0, inf) for counts and times."""
    share = np.isin(np.asarray(metrics, dtype=object), SHARES)
    return np.zeros(share.size), np.where(share, 1.0, np.inf)


def summarise(results: list[ReplicationResult]) -> pd.DataFrame:
    """The tidy summary: gate, direction, metric, stage, class, the mean with its 95 % interval,
    the spread of the replications (p05, p95), std and n."""
    labels, m = _matrix(results)
    out = pd.DataFrame(list(labels), columns=SUMMARY_COLUMNS[:5])
    low, high = metric_range(out["metric"])
    for key, col in describe(m, low=low, high=high).items():
        out[key] = col
    return out


def per_replication(results: list[ReplicationResult]) -> pd.DataFrame:
    """Every replication's value of every metric, for tests and further analysis."""
    labels, m = _matrix(results)
    lab = pd.DataFrame(list(labels), columns=SUMMARY_COLUMNS[:5])
    reps = m.shape[0]
    out = pd.concat([lab] * reps, ignore_index=True)
    out["value"] = m.ravel()
    out["rep"] = np.repeat(np.arange(reps), len(labels))
    return out


DAILY_METRICS = (("crossings", "daily"), ("queue_mean", "daily_queue_mean"), ("queue_end", "daily_queue_end"))


def _daily_series(r: ReplicationResult, key: tuple[str, str]) -> list[np.ndarray]:
    """A replication's daily series of a group, in the order of daily_metric_names."""
    return [getattr(r, attr)[key] for _metric, attr in DAILY_METRICS] + (
        [r.daily_cost[key]] if r.daily_cost else [])


def daily_metric_names(results: list[ReplicationResult]) -> tuple[str, ...]:
    """The metrics of daily.csv: DAILY_METRICS', and cost_total_vnd for a priced scenario (its
    components by day would take a run five times the memory for what summary.csv says by group)."""
    return tuple(m for m, _a in DAILY_METRICS) + (COST_METRICS[:1] if results[0].daily_cost else ())


def daily_matrix(results: list[ReplicationResult], start, keys: list | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The daily figures of every replication (of the groups ``keys``, default all): their
    labels (gate, direction, date, metric) and values (replications x labels), in one matrix."""
    keys = list(results[0].daily) if keys is None else keys
    days = len(next(iter(results[0].daily.values())))
    dates = pd.date_range(start, periods=days, freq="D").date
    names = daily_metric_names(results)
    m = np.stack([np.concatenate([x for k in keys for x in _daily_series(r, k)]) for r in results])
    n_series = len(keys) * len(names)
    labels = pd.DataFrame({
        "gate": np.repeat([g for g, _d in keys], len(names) * days),
        "direction": np.repeat([d for _g, d in keys], len(names) * days),
        "date": np.tile(dates, n_series),
        "metric": np.tile(np.repeat(names, days), len(keys)),
    })
    return labels, m


def daily_table(results: list[ReplicationResult], start) -> pd.DataFrame:
    """Per calendar day, gate and direction (tidy): crossings, the mean number waiting
    (queue_mean), the number waiting at the day's end (queue_end) and, priced, the cost
    incurred in the day (cost_total_vnd), each with the mean over replications, its 95 % interval
    and the replications' 5th and 95th percentiles."""
    parts = []
    for key in results[0].daily:  # a group at a time: never every day of every group of every replication at once
        labels, m = daily_matrix(results, start, [key])
        out = labels[["date", "gate", "direction", "metric"]].copy()
        stats_ = describe(m, low=0.0)
        for k in ("mean", "ci_low", "ci_high", "p05", "p95"):
            out[k] = stats_[k]
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


MONTHLY_COLUMNS = ["gate", "direction", "month", "metric", "mean", "ci_low", "ci_high", "p05", "p95"]


def monthly_matrix(results: list[ReplicationResult], start) -> tuple[pd.DataFrame, np.ndarray]:
    """The monthly figures of every replication: their labels (gate, direction, month, metric)
    and values (replications x labels)."""
    groups = results[0].monthly_groups
    if any(r.monthly_groups != groups for r in results):
        raise ValueError("replications report different groups; they come from different scenarios")
    n_groups, n_metrics, n_months = results[0].monthly.shape
    labels = pd.DataFrame({
        "gate": np.repeat([g for g, _d in groups], n_metrics * n_months),
        "direction": np.repeat([d for _g, d in groups], n_metrics * n_months),
        "month": np.tile(month_names(start, n_months), n_groups * n_metrics),
        "metric": np.tile(np.repeat(MONTHLY_METRICS, n_months), n_groups),
    })
    return labels, np.stack([r.monthly.ravel() for r in results])


def monthly_table(results: list[ReplicationResult], start) -> pd.DataFrame:
    """Per calendar month, gate and direction (tidy): each of MONTHLY_METRICS with the mean over
    replications, its 95 % interval and the replications' 5th and 95th percentiles."""
    out, m = monthly_matrix(results, start)
    stats_ = describe(m, low=0.0)
    for k in MONTHLY_COLUMNS[4:]:
        out[k] = stats_[k]
    return out


def per_replication_monthly(results: list[ReplicationResult], start) -> pd.DataFrame:
    """Every replication's monthly figures (per_replication_monthly.csv): gate, direction,
    month, metric, value, rep."""
    labels, m = monthly_matrix(results, start)
    out = pd.concat([labels] * m.shape[0], ignore_index=True)
    out["value"] = m.ravel()
    out["rep"] = np.repeat(np.arange(m.shape[0]), len(labels))
    return out


def queue_by_hour_table(results: list[ReplicationResult]) -> pd.DataFrame:
    """Per flow, the mean number waiting at each hour of day over the days it opens at all (see
    sim.statistics.queue_profile), averaged over the replications that have such days."""
    out = []
    for g, d in results[0].queue_by_hour:
        arr = describe(np.vstack([r.queue_by_hour[(g, d)] for r in results]), spread=False)["mean"]
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
