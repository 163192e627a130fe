"""Hypothesis strategies: small random scenarios that use every feature of the format."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

DISTS = st.sampled_from([
    {"dist": "exponential", "mean": 20.0},
    {"dist": "lognormal", "mean": 15.0, "cv": 0.8},
    {"dist": "gamma", "mean": 25.0, "cv": 1.2},
    {"dist": "triangular", "low": 5.0, "mode": 10.0, "high": 40.0},
    {"dist": "deterministic", "value": 12.0},
])


@st.composite
def hours(draw):
    a = draw(st.integers(0, 10))
    b = draw(st.integers(a + 1, 14))
    c = draw(st.integers(b, 20))
    d = draw(st.integers(c + 1, 24))
    spans = [f"{a:02d}:00-{b:02d}:30", f"{c:02d}:45-{d:02d}:00" if d < 24 else f"{c:02d}:45-24:00"]
    spec = {"default": spans}
    if draw(st.booleans()):
        spec["sun"] = [] if draw(st.booleans()) else ["00:00-24:00"]
    return spec


@st.composite
def direction(draw, classes):
    spec = {
        "demand": {c: draw(st.floats(2.0, 60.0)) for c in classes},
        "stages": [
            {"name": f"s{k}", "lanes": draw(st.integers(1, 3)), "service_min": draw(DISTS)}
            for k in range(draw(st.integers(1, 3)))
        ],
    }
    if draw(st.booleans()):
        spec["acceptance_limit"] = draw(st.integers(1, 30))
        spec["acceptance_position"] = draw(st.sampled_from(["first", "last"]))
    if draw(st.booleans()):
        spec["initial_backlog"] = {c: draw(st.integers(0, 15)) for c in classes}
        if draw(st.booleans()):  # the backlog came over the days before the start
            spec["backlog_age_days"] = {"dist": "uniform", "low": 0.0, "high": draw(st.sampled_from([0.5, 3.0, 40.0]))}
    return spec


@st.composite
def scenarios(draw):
    days = draw(st.integers(2, 6))
    start = dt.date(2022, 3, 1) + dt.timedelta(days=draw(st.integers(0, 6)))
    # three priority levels (green lane, trucks, bulk last) and classes sharing one level
    classes = {"green": {"priority": 0}, "truck": {"priority": 1}, "fruit": {"priority": 0}, "bulk": {"priority": 2}}
    for c in classes:  # some classes give up waiting: patience from half an hour (shorter than
        # some services: deadlines that pass in service) to days
        patience = draw(st.sampled_from([None, None, 0.02, 0.08, 0.4, 2.0]))
        if patience is not None:
            classes[c]["patience_days"] = patience
            if draw(st.booleans()):  # lognormal rather than exponential
                classes[c]["patience_cv"] = draw(st.sampled_from([0.3, 2.0]))
    gates = {}
    for gi in range(draw(st.integers(1, 2))):
        cls = draw(st.sampled_from([["truck"], ["green", "truck"], ["green", "truck", "bulk"], ["green", "fruit"]]))
        gate = {"name": f"gate {gi}", "classes": cls, "hours": draw(hours())}
        dirs = draw(st.sampled_from([["exit"], ["entry"], ["exit", "entry"]]))
        for d in dirs:
            gate[d] = draw(direction(cls))
        if draw(st.booleans()):
            day = draw(st.integers(0, days - 1))
            gate["closures"] = [{
                "start": dt.datetime.combine(start + dt.timedelta(days=day), dt.time(draw(st.integers(0, 20)))),
                "end": dt.datetime.combine(start + dt.timedelta(days=day + 1), dt.time(draw(st.integers(0, 12)))),
                "directions": draw(st.sampled_from([["exit"], ["entry"], ["exit", "entry"]])),
            }]
        if draw(st.booleans()):
            gate["random_closures"] = [{
                "id": "weather",
                "daily_probability": draw(st.floats(0.0, 0.6)),
                "duration_h": {"dist": "uniform", "low": 1.0, "high": 10.0},
            }]
        gates[f"g{gi}"] = gate
    adjust = []
    for gid, gate in gates.items():
        if draw(st.booleans()):
            adjust.append(draw(adjustment(gid, gate, start, days, len(adjust))))
    out = {
        "name": "random",
        "horizon": {"start": start, "end": start + dt.timedelta(days=days - 1)},
        "classes": classes,
        "gates": gates,
    }
    if adjust:
        out["adjust"] = adjust
    return out


@st.composite
def adjustment(draw, gid: str, gate: dict, start: dt.date, days: int, n: int):
    """An adjustment of one gate: service, lanes, hours or limits, from a date or all horizon."""
    first = draw(st.integers(0, days - 1))
    span = {"from": start + dt.timedelta(days=first),
            "until": start + dt.timedelta(days=draw(st.integers(first, days - 1)))}
    dated = draw(st.booleans())
    dirs = [d for d in ("exit", "entry") if d in gate]
    limited = [d for d in dirs if "acceptance_limit" in gate[d]]
    kinds = ["service", "lanes", "hours", "refuse"] + (["acceptance_limit"] if limited else [])
    what = draw(st.sampled_from(kinds))
    out = {"id": f"a{n}", "what": what, "gates": [gid]}
    if what == "refuse":
        out["classes"] = [draw(st.sampled_from(gate["classes"]))]
        out.update(span)
        return out
    if what == "service":
        out["multiply"] = draw(st.sampled_from([0.5, 0.8, 1.5, 2.0]))
        if draw(st.booleans()):
            out["classes"] = [draw(st.sampled_from(gate["classes"]))]
    elif what == "lanes":
        out["set"] = draw(st.integers(0 if dated else 1, 3))
    elif what == "hours":
        out["set"] = draw(hours())["default"]
    else:
        out["directions"] = [draw(st.sampled_from(limited))]
        if dated and draw(st.booleans()):
            out["set"] = draw(st.integers(0, 20))  # from a date, 0 shuts the far side on those days
        else:
            out["multiply"] = draw(st.sampled_from([0.5, 2.0]))
    if dated:
        out.update(span)
    return out
