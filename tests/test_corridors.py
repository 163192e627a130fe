"""Corridors: gates that trucks choose between (sim.model.corridors). ``shares`` keeps each
gate's demand, bit for bit; ``open`` sends a day's demand of a gate that does not serve that day
(closed all day, refusing the class, no lane or no acceptance) to the corridor's gates that do;
what leaves the province is counted in ``diverted_out``, never lost."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim import from_dict, load
from sim.base.rng import replication_seed
from sim.cli import main
from sim.engines import fast
from sim.engines.draws import replication_inputs
from sim.model.adjust import refusals
from sim.model.corridors import split
from sim.statistics.metrics import ALL, replication_metrics

from .strategies import scenarios

ROOT = Path(__file__).parent.parent
FITTED = ROOT / "calibration" / "fitted_2022.toml"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _members(raw: dict) -> list[str]:
    return raw["corridors"]["c"]["gates"]


def _with_rule(raw: dict, rule: str | None, outside_share: float | None = None) -> dict:
    """raw with every direction of its corridor on ``rule`` (None: no rule given, 'shares'), the
    outside share kept unless one is given."""
    out = copy.deepcopy(raw)
    c = out["corridors"]["c"]
    for d in ("exit", "entry"):
        if any(d in out["gates"][g] for g in c["gates"]):
            if rule is None:
                c.pop(d, None)
                continue
            choice = c.setdefault(d, {})
            choice["rule"] = rule
            if outside_share is not None:
                choice["outside_share"] = outside_share
    return out


# ------------------------------------------------------------------ the split of a day's demand


@settings(max_examples=200, deadline=None)
@given(demand=hnp.arrays(float, (3, 5), elements=st.sampled_from([0.0, 0.5, 3.0, 40.0, 1e4])),
       serving=hnp.arrays(np.bool_, (3, 5)), rule=st.sampled_from(["shares", "open"]),
       outside=st.sampled_from([0.0, 0.3, 0.99]))
def test_the_split_keeps_every_truck_of_the_corridor(demand, serving, rule, outside):
    """What the gates receive plus what leaves is the corridor's demand, each day; under 'open'
    nothing goes to a gate on a day it does not serve, and the gates that serve receive in
    proportion to their own demand; under 'shares' each keeps its own (less what leaves)."""
    factors, leaving = split(demand, serving, rule, outside)
    total = demand.sum(axis=0)
    np.testing.assert_allclose((factors * demand).sum(axis=0) + leaving, total, rtol=1e-12)
    assert np.all(factors >= 0) and np.all(leaving >= 0)
    if rule == "shares":
        assert np.all(factors == 1 - outside)
        return
    assert np.all(factors[~serving] == 0)
    served = np.where(serving, demand, 0).sum(axis=0)
    for k in range(demand.shape[1]):
        if served[k] > 0:  # one factor for every gate that serves: shares renormalised
            assert np.allclose(factors[serving[:, k], k], (1 - outside) * total[k] / served[k], rtol=1e-12)
        else:
            assert leaving[k] == total[k]
    every = serving.all(axis=0)
    if outside == 0:
        assert np.all(factors[:, every] == 1.0)  # exactly: a day every gate serves changes nothing


# ------------------------------------------------------------------ 'shares'


@SETTINGS
@given(raw=scenarios(corridor=True), seed=st.integers(0, 2**32 - 1))
def test_a_shares_corridor_with_nobody_leaving_changes_no_vehicle(raw, seed):
    """A corridor on 'shares' with no outside share gives every flow the same vehicles, to the
    bit, as the scenario without it, and sends nobody out of the province."""
    without = copy.deepcopy(raw)
    del without["corridors"]
    a = replication_inputs(from_dict(_with_rule(raw, None)), replication_seed(seed, 0))
    b = replication_inputs(from_dict(without), replication_seed(seed, 0))
    for fa, fb in zip(a.flows, b.flows, strict=True):
        for name in ("arrival", "vclass", "service", "deadline", "available"):
            x, y = getattr(fa, name), getattr(fb, name)
            assert (x is None) == (y is None) and (x is None or np.array_equal(x, y)), (fa.gate, fa.direction, name)
    assert a.diverted and set(a.diverted.values()) == {0} and not b.diverted


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _without_corridors(text: str) -> str:
    """A scenario file's text with its corridor tables taken out (each from its header to the
    next blank line before a line that is neither a key nor a comment of it)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("[corridors."):
            inside = True
        elif inside and line.startswith("["):
            inside = False
        if not inside:
            out.append(line)
    return "\n".join(out) + "\n"


def test_the_baseline_with_a_shares_corridor_writes_the_tables_it_writes_without(tmp_path):
    """The 2022 baseline with its three Móng Cái crossings in a corridor on 'shares' (nobody
    leaving) writes the summary.csv, per_replication.csv and daily.csv of the baseline without a
    corridor at the same seed: the same bytes, line for line, once the corridor's own rows (each
    gate's corridor_share and the corridor's diverted_out and cost_diverted_vnd, all 0), which
    come after every other row, are left out."""
    text = (ROOT / "scenarios" / "baseline_2022.toml").read_text(encoding="utf-8")
    assert "[corridors.mong_cai_crossings]" in text
    without = tmp_path / "without.toml"
    without.write_text(_without_corridors(text), encoding="utf-8")
    assert not load(without).nominal.corridors
    with_corridor = tmp_path / "corridor.toml"
    with_corridor.write_text(f'extends = "{without}"\n\n[corridors.mong_cai_crossings]\n'
                             'gates = ["mong_cai", "bac_luan_2", "km3_4"]\n', encoding="utf-8")
    args = ["--reps", "3", "--seed", "7", "--no-plots", "--no-report", "--quiet", "--workers", "1"]
    assert main(["run", str(without), "--out", str(tmp_path / "today"), *args]) == 0
    assert main(["run", str(with_corridor), "--out", str(tmp_path / "corridor"), *args]) == 0
    today, corridor = tmp_path / "today", tmp_path / "corridor"
    assert (today / "daily.csv").read_bytes() == (corridor / "daily.csv").read_bytes()
    for table in ("summary.csv", "per_replication.csv"):
        new = _lines(corridor / table)
        own = [line for line in new if "corridor_share" in line or "mong_cai_crossings" in line]
        # 3 gates x (exit, entry, both) shares; 2 directions x (all classes, 2 classes) and both diverted,
        # each diverted_out with its cost (the baseline has costs)
        assert len(own) == (9 + 7 + 7) * (1 if table == "summary.csv" else 3)
        assert [line for line in new if line not in own] == _lines(today / table), table
        if table == "summary.csv":
            assert new[-len(own):] == own  # after every other row
            diverted = pd.read_csv(corridor / table).query("metric in ('diverted_out', 'cost_diverted_vnd')")
            assert len(diverted) == 14 and (diverted["mean"] == 0).all()


# ------------------------------------------------------------------ 'open'


def _not_serving(f, k: int) -> bool:
    """Whether a flow does not serve on day k of its horizon: closed all day (no time of the day
    at which a service may start), no lane at one of its stages all day, or a far side that
    accepts nobody that day."""
    lo, hi = 24.0 * k, 24.0 * (k + 1)
    if f.calendar.next_open(lo) >= hi:
        return True
    for cals, quota in zip(f.lane_calendars, f.quota):
        if cals is not None and all(c.next_open(lo) >= hi for c in cals):
            return True
        if quota is not None and quota[k] == 0:
            return True
    return False


@SETTINGS
@given(raw=scenarios(corridor=True), seed=st.integers(0, 2**32 - 1))
def test_open_sends_no_truck_to_a_gate_on_a_day_it_is_closed_or_refuses_its_class(raw, seed):
    """Under 'open', no vehicle arrives at a gate of the corridor on a day the gate is closed
    all day (its hours, fixed and random closures), has no lane or accepts nobody, nor one of a
    class on a day the gate turns that class away."""
    scen = from_dict(_with_rule(raw, "open"))
    rep = replication_inputs(scen, replication_seed(seed, 0))
    m = scen.nominal
    for f in rep.flows:
        if f.gate not in _members(raw):
            continue
        came = f.arrival > 0  # the initial backlog was there before
        days = (f.arrival[came] // 24).astype(int)
        for k in np.unique(days):
            assert not _not_serving(f, k), (f.gate, f.direction, k)
        for ci, c in enumerate(f.classes):
            for lo, hi in refusals(m, f.gate, f.direction, c):
                t = f.arrival[came & (f.vclass == ci)]
                assert not np.any((t >= lo) & (t < hi)), (f.gate, f.direction, c, lo, hi)


def _demand_scenario(closures: dict[str, list[tuple[str, str]]], rule: str = "open", outside: float = 0.0,
                     refuse: str | None = None) -> dict:
    """Two gates of one class, 1,000 and 3,000 trucks a day, in a corridor; test values."""
    gates = {}
    for gid, demand in (("a", 1000.0), ("b", 3000.0)):
        gates[gid] = {"name": gid, "classes": ["truck"], "hours": {"default": ["00:00-24:00"]},
                      "closures": [{"start": s, "end": e} for s, e in closures.get(gid, [])],
                      "exit": {"demand": {"truck": demand},
                               "stages": [{"name": "customs", "lanes": 100,
                                           "service_min": {"dist": "exponential", "mean": 1.0}}]}}
    raw = {"name": "two", "horizon": {"start": "2022-03-01", "end": "2022-03-10"},
           "classes": {"truck": {"priority": 1}}, "gates": gates,
           "corridors": {"c": {"gates": ["a", "b"], "exit": {"rule": rule, "outside_share": outside}}}}
    if refuse:
        raw["adjust"] = [{"id": "ban", "what": "refuse", "gates": [refuse], "classes": ["truck"],
                          "from": "2022-03-06", "until": "2022-03-06"}]
    return raw


def _assert_daily_rates(rep, expected: dict) -> None:
    """Each gate's arrivals by day within five standard deviations of its expected rate (Poisson),
    and none on a day the rate is 0."""
    for gate, rate in expected.items():
        got = _by_day(rep, gate)
        assert np.all(np.abs(got - rate) <= 5 * np.sqrt(np.maximum(rate, 1))), (gate, got)
        assert np.all(got[rate == 0] == 0)


def _by_day(rep, gate: str) -> np.ndarray:
    f = next(f for f in rep.flows if f.gate == gate)
    return np.bincount((f.arrival // 24).astype(int), minlength=10)


def _both_closed_on_8_march() -> dict:
    """Gates a (closed 3-4 and 8 March) and b (closed 8 March, refusing trucks on 6 March) in a
    corridor on 'open'."""
    return _demand_scenario({"a": [("2022-03-03", "2022-03-04"), ("2022-03-08", "2022-03-08")],
                             "b": [("2022-03-08", "2022-03-08")]}, refuse="b")


def test_open_moves_a_closed_gates_demand_to_the_open_ones_and_a_day_with_none_out_of_the_province():
    """a (1,000 a day) closed 3-4 March, both closed 8 March, b (3,000 a day) refusing trucks
    on 6 March: on a's closed days b receives both gates' 4,000 a day, on b's refusing day a
    does, on the day both are closed the 4,000 leave the province; every other day each keeps
    its own. The counts lie within five standard deviations of those rates (Poisson)."""
    raw = _both_closed_on_8_march()
    rep = replication_inputs(from_dict(raw), replication_seed(3, 0))
    expected = {"a": np.array([1000, 1000, 0, 0, 1000, 4000, 1000, 0, 1000, 1000]),
                "b": np.array([3000, 3000, 4000, 4000, 3000, 0, 3000, 0, 3000, 3000])}
    _assert_daily_rates(rep, expected)
    assert abs(rep.diverted[("c", "exit", "truck")] - 4000) <= 5 * math.sqrt(4000)


def test_an_outside_share_leaves_the_province_and_thins_each_gate_on_the_same_draws():
    """A quarter of the demand leaves: the gates keep three quarters of theirs, as the first
    arrivals of the same unit-rate draws (common random numbers: the thinned stream's times are
    the full one's stretched), and the rest is counted as diverted."""
    full = replication_inputs(from_dict(_demand_scenario({}, rule="shares")), replication_seed(5, 0))
    thin = replication_inputs(from_dict(_demand_scenario({}, rule="shares", outside=0.25)), replication_seed(5, 0))
    for gate in ("a", "b"):
        f_full = next(f for f in full.flows if f.gate == gate)
        f_thin = next(f for f in thin.flows if f.gate == gate)
        np.testing.assert_allclose(f_thin.arrival * 0.75, f_full.arrival[:f_thin.n], rtol=1e-9)
    assert full.diverted[("c", "exit", "truck")] == 0
    assert abs(thin.diverted[("c", "exit", "truck")] - 0.25 * 4000 * 10) <= 5 * math.sqrt(10_000)


# ------------------------------------------------------------------ conservation


@SETTINGS
@given(raw=scenarios(corridor=True), seed=st.integers(0, 2**32 - 1))
def test_a_corridors_trucks_are_conserved_in_every_replication(raw, seed):
    """Per corridor and direction (and both), in one replication: its gates' arrivals plus
    diverted_out equal their crossings, those in the system at the end, those that gave up and
    diverted_out, exactly; each of these is what the vehicles' records say (arrivals the
    vehicles drawn, diverted_out the counts drawn for each class) and each gate's
    corridor_share its crossings over the corridor's."""
    scen = from_dict(raw)
    rep = replication_inputs(scen, replication_seed(seed, 0))
    records = fast.simulate(rep)
    result = replication_metrics(rep, records)
    value = {lab: x for lab, x in zip(result.labels, result.values)}
    members = _members(raw)
    by_flow = {(r.inputs.gate, r.inputs.direction): r for r in records}
    for d in ("exit", "entry", ALL):
        flows = [(g, dd) for (g, dd) in by_flow if g in members and d in (dd, ALL)]
        if not flows:
            continue
        diverted = value[("c", d, "diverted_out", "", "")]
        assert diverted == sum(n for (c, dd, _k), n in rep.diverted.items() if d in (dd, ALL))
        sums = {m: sum(value[(g, d, m, "", "")] for g in {g for g, _ in flows})
                for m in ("arrivals", "crossings", "in_system_end", "gave_up")}
        assert sums["arrivals"] + diverted == sums["crossings"] + sums["in_system_end"] + sums["gave_up"] + diverted
        records_ = [by_flow[k] for k in flows]
        assert sums["arrivals"] == sum(r.inputs.n for r in records_)
        crossed = sum(int(np.sum(~np.isnan(r.depart) & (r.depart <= rep.horizon_h))) for r in records_)
        assert sums["crossings"] == crossed
        left = sum(int(np.sum(~np.isnan(r.left) & (r.left <= rep.horizon_h))) for r in records_)
        assert sums["gave_up"] == left
        total = sums["crossings"]
        for g in {g for g, _ in flows}:
            share = value[(g, d, "corridor_share", "", "")]
            own = value[(g, d, "crossings", "", "")]
            assert (math.isnan(share) and total == 0) or share == pytest.approx(own / total, rel=1e-12)


def test_the_capacity_check_sees_the_demand_a_corridor_moves():
    """The load checked before a run is the one the corridor makes: under 'open', a's two closed
    days (2,000 trucks) go to b; under 'shares' each gate keeps its own, and an outside share
    takes its part off each."""
    from sim.experiments.capacity import loads

    def demand(raw):
        return {ld.gate: ld.demand for ld in loads(from_dict(raw))}

    closed = {"a": [("2022-03-03", "2022-03-04")]}
    assert demand(_demand_scenario(closed)) == pytest.approx({"a": 8000, "b": 32000})
    assert demand(_demand_scenario(closed, rule="shares")) == pytest.approx({"a": 10000, "b": 30000})
    assert demand(_demand_scenario(closed, outside=0.5)) == pytest.approx({"a": 4000, "b": 16000})


# ------------------------------------------------------------------ what a run and a comparison say

def _gate(gid: str, demand: int, lanes: int, extra: str = "") -> str:
    return (f'[gates.{gid}]\nname = "Gate {gid.upper()}"\nclasses = ["truck"]\nhours = {{default = ["06:00-20:00"]}}\n'
            f'{extra}\n[gates.{gid}.exit]\ndemand = {{truck = {demand}}}\n\n[[gates.{gid}.exit.stages]]\n'
            f'name = "customs"\nlanes = {lanes}\nservice_min = {{dist = "exponential", mean = 10}}\n\n')


# two gates of one class; every number here is a test value (assumption: chosen to exercise the outputs)
TWO_GATES = ('name = "two_gates"\n\n[horizon]\nstart = 2022-03-01\nend = 2022-03-10\n\n[classes.truck]\npriority = 1\n\n'
             + _gate("a", 40, 2, "closures = [{start = 2022-03-03, end = 2022-03-05}]\n") + _gate("b", 60, 3))
CORRIDOR = """
[corridors.ab]
name = "Gates A and B"
gates = ["a", "b"]

[corridors.ab.exit]
rule = "open"
outside_share = 0.1
"""


def test_a_run_and_a_comparison_say_where_a_corridors_traffic_went(tmp_path, capsys):
    """The printed table and the report of a run say, per corridor, each gate's share of its
    crossings and how many left the province (no block for the corridor among the gates); a
    comparison with a base that has no corridor gives the base's shares from its own crossings
    and none leaving, and prints and reports the change of each share."""
    import html

    from sim import read_table

    base, alt = tmp_path / "base.toml", tmp_path / "alt.toml"
    base.write_text(TWO_GATES, encoding="utf-8")
    alt.write_text(TWO_GATES.replace('name = "two_gates"', 'name = "two_gates_open"') + CORRIDOR, encoding="utf-8")
    assert main(["run", str(alt), "--reps", "3", "--out", str(tmp_path / "run"), "--no-plots", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "ab" not in printed.splitlines() and "corridor Gates A and B: exit: a " in printed
    page = html.unescape((tmp_path / "run" / "report.html").read_text(encoding="utf-8"))
    assert "Where the traffic went, Gates A and B: exit: Gate A " in page and "left the province" in page

    assert main(["compare", str(base), str(alt), "--reps", "3", "--out", str(tmp_path / "cmp"), "--no-plots",
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "corridor Gates A and B, exit: a " in printed and "left the province 0 → " in printed
    t = read_table(tmp_path / "cmp" / "compare.csv").set_index(["gate", "direction", "metric", "stage", "class"])
    own = read_table(tmp_path / "cmp" / "summary.csv")
    crossings = own[(own.scenario == "two_gates") & (own.metric == "crossings") & (own.direction == "exit")
                    & (own.stage == "") & (own["class"] == "")].set_index("gate")["mean"]
    share = t.loc[("a", "exit", "corridor_share", "", ""), "base_mean"]
    assert share == pytest.approx(crossings["a"] / (crossings["a"] + crossings["b"]), rel=0.05)  # a mean of ratios
    left = t.loc[("ab", "exit", "diverted_out", "", "")]
    assert left.base_mean == 0 and left.alt_mean > 0
    page = html.unescape((tmp_path / "cmp" / "report.html").read_text(encoding="utf-8"))
    assert "Where the traffic moved, Gates A and B, exit: Gate A " in page


def test_a_sweep_follows_a_corridors_metrics(tmp_path):
    """--output takes the corridor's metrics: diverted_out of each corridor (by its id) and each
    corridor gate's share; a scenario without a corridor refuses them with one line."""
    from sim.experiments.sweep import Output, SweepError, parse_outputs

    base = tmp_path / "base.toml"
    base.write_text(TWO_GATES, encoding="utf-8")
    alt = tmp_path / "alt.toml"
    alt.write_text(TWO_GATES + CORRIDOR, encoding="utf-8")
    assert parse_outputs(["diverted_out", "corridor_share@b"], load(alt)) == [
        Output("diverted_out", "ab"), Output("corridor_share", "b")]
    assert parse_outputs(["corridor_share"], load(alt)) == [Output("corridor_share", "a"), Output("corridor_share", "b")]
    with pytest.raises(SweepError, match="is not a corridor of the scenario for diverted_out; allowed: ab"):
        parse_outputs(["diverted_out@a"], load(alt))
    with pytest.raises(SweepError, match="the scenario has no corridor"):
        parse_outputs(["diverted_out"], load(base))


def test_a_split_worked_out_once_gives_a_replication_what_it_gives_alone():
    """Where nothing in a corridor's split varies (no random closure, no sampled input) the plan
    keeps it: replication 1 after replication 0 has the vehicles it has on a new plan."""
    from sim.model import plan as plans

    scen = from_dict(_demand_scenario({"a": [("2022-03-03", "2022-03-04")]}, outside=0.1))
    plans._CACHE.clear()
    alone = replication_inputs(scen, replication_seed(3, 1))
    plans._CACHE.clear()
    replication_inputs(scen, replication_seed(3, 0))
    after = replication_inputs(scen, replication_seed(3, 1))
    assert plans.compile_plan(scen).corridors[0].cache  # kept
    for f, g in zip(alone.flows, after.flows, strict=True):
        assert np.array_equal(f.arrival, g.arrival)
    assert alone.diverted == after.diverted


def test_a_comparison_draws_where_each_corridors_traffic_went(tmp_path):
    """A comparison with a corridor in either scenario draws, per corridor, each gate's weekly
    share of its crossings (base and alternative), and the report shows it; the shares a week
    are those of the daily table."""
    import html

    from sim import load, run
    from sim.outputs.results import corridor_daily

    base, alt = tmp_path / "base.toml", tmp_path / "alt.toml"
    base.write_text(TWO_GATES, encoding="utf-8")
    alt.write_text(TWO_GATES.replace('name = "two_gates"', 'name = "two_gates_open"') + CORRIDOR, encoding="utf-8")
    assert main(["compare", str(base), str(alt), "--reps", "2", "--out", str(tmp_path / "cmp"), "--workers", "1",
                 "--quiet"]) == 0
    png = tmp_path / "cmp" / "corridor_ab.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.unescape((tmp_path / "cmp" / "report.html").read_text(encoding="utf-8"))
    assert "Where the traffic of Gates A and B went" in page
    scen = load(alt)
    res = run(scen, reps=2, workers=1, progress=False)
    daily = res.daily.assign(scenario=scen.name)
    rows = corridor_daily(daily, [scen])["ab"]
    assert set(rows.gate) == {"a", "b"} and set(rows.corridor) == {"Gates A and B"}


def test_open_with_none_open_queue_keeps_a_days_trucks_at_their_gates_when_no_gate_serves():
    """As the test above, but none_open = "queue": on the day both gates are closed each keeps
    its own trucks (they wait for the reopening) and none leaves; the other days move as
    before. none_open under another rule is refused."""
    raw = _both_closed_on_8_march()
    raw["corridors"]["c"]["exit"]["none_open"] = "queue"
    rep = replication_inputs(from_dict(raw), replication_seed(3, 0))
    expected = {"a": np.array([1000, 1000, 0, 0, 1000, 4000, 1000, 1000, 1000, 1000]),
                "b": np.array([3000, 3000, 4000, 4000, 3000, 0, 3000, 3000, 3000, 3000])}
    _assert_daily_rates(rep, expected)
    assert rep.diverted[("c", "exit", "truck")] == 0
    raw["corridors"]["c"]["exit"]["rule"] = "shares"
    from sim import BordersimError

    with pytest.raises(BordersimError, match=r"none_open: 'queue' belongs to the rule 'open', not 'shares'"):
        from_dict(raw)
