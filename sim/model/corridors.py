"""A corridor's demand by day: what each of its gates receives and what leaves the province.

A corridor (sim.model.schema.Corridor) groups gates that trucks choose between. Each gate keeps
its own demand (by class, with its profiles and steps); the corridor's demand on a day is the
sum of its gates'. The choice rule turns it into a factor per gate and day on that gate's own
demand: a Poisson stream split by shares is independent Poisson streams at the split rates, so
each gate keeps its own named arrival stream, and a factor of 1 changes nothing, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .calendar import Calendar


def serving_days(calendar: Calendar, lane_calendars: list, quota: list, refusals, days: int) -> np.ndarray:
    """The days on which a gate serves a class in a direction (bool per day): it opens at some
    time of the day (its hours less fixed and random closures), every stage has a lane then
    (lane_calendars: a stage's per-lane calendars where its lanes follow a schedule, else
    None), the far side accepts some vehicles that day (quota: a stage's daily limits, or
    None) and the class is not turned away all day (refusals: [from, to) hours, whole days)."""
    out = calendar.open_days(days)
    for lanes, limits in zip(lane_calendars, quota):
        if lanes is not None:
            out &= np.logical_or.reduce([lane.open_days(days) for lane in lanes]) if lanes else False
        if limits is not None:
            out &= limits[:days] > 0
    for start_h, end_h in refusals:
        out[max(int(start_h // 24), 0):max(int(end_h // 24), 0)] = False
    return out


def split(demand: np.ndarray, serving: np.ndarray, rule: str, outside_share: float,
          none_open: str = "leave") -> tuple[np.ndarray, np.ndarray]:
    """One class of a corridor's direction: the factor on each gate's own demand on each day
    (gates x days) and the expected vehicles that leave the province each day.

    demand (gates x days): each gate's own expected vehicles a day; serving (gates x days): the
    days each serves the class (serving_days). ``shares``: each keeps its demand; ``open``: the
    demand of a day goes to the gates that serve that day, in proportion to their own demand;
    on a day none does (or none that serves has any), ``none_open`` says what the trucks do:
    ``leave``, all of it leaves the province, or ``queue``, each keeps to its own gate and waits
    for it to reopen. Under either rule, the share ``outside_share`` of what is left leaves
    the province (to Lạng Sơn)."""
    keep = 1.0 - outside_share
    total = demand.sum(axis=0)
    if rule == "shares":
        return np.full(demand.shape, keep), outside_share * total
    served = np.where(serving, demand, 0.0).sum(axis=0)
    some = served > 0
    boost = np.divide(total, served, out=np.ones_like(total), where=some)  # 1 exactly where every gate serves
    if none_open == "queue":
        factor = np.where(some, np.where(serving, boost, 0.0), 1.0)
        return factor * keep, outside_share * total
    return np.where(serving, boost, 0.0) * keep, np.where(some, outside_share * total, total)
