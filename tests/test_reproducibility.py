"""A result depends only on the scenario and the seed: not on workers, not on the run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim import load, run
from sim.cli import main

DATA = Path(__file__).parent / "data"
SMALL = str(DATA / "small_2022.toml")


def _run_cli(out: Path, seed: int, workers: int = 1) -> bytes:
    rc = main(["run", SMALL, "--reps", "3", "--seed", str(seed), "--out", str(out),
               "--workers", str(workers), "--no-plots", "--quiet"])
    assert rc == 0
    return (out / "summary.csv").read_bytes()


def test_same_seed_same_summary(tmp_path):
    a = _run_cli(tmp_path / "a", seed=5)
    b = _run_cli(tmp_path / "b", seed=5)
    assert a == b
    assert (tmp_path / "a" / "daily.csv").read_bytes() == (tmp_path / "b" / "daily.csv").read_bytes()


def test_other_seed_other_summary(tmp_path):
    assert _run_cli(tmp_path / "a", seed=5) != _run_cli(tmp_path / "b", seed=6)


def test_result_does_not_depend_on_workers(tmp_path):
    assert _run_cli(tmp_path / "a", seed=7, workers=1) == _run_cli(tmp_path / "b", seed=7, workers=2)


def test_replication_depends_only_on_its_index():
    """Replication i is the same whether 2 or 4 replications are run."""
    scen = load(SMALL)
    two = run(scen, reps=2, seed=9, workers=1, progress=False).per_replication
    four = run(scen, reps=4, seed=9, workers=1, progress=False).per_replication
    pd.testing.assert_frame_equal(two, four[four["rep"] < 2].reset_index(drop=True))


def test_outputs_are_complete(tmp_path):
    out = tmp_path / "full"
    assert main(["run", SMALL, "--reps", "2", "--out", str(out), "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"summary.csv", "daily.csv", "metadata.json", "queue_by_hour.png", "time_in_system.png",
            "crossings_per_day.png"} <= names
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert {"gate", "direction", "metric", "mean", "ci_low", "ci_high"} <= set(summary.columns)
    gates = set(summary["gate"])
    # the gates, all of them, and the baseline's corridor (its diverted_out; README: summary.csv)
    assert {"mong_cai", "bac_luan_2", "km3_4", "hoanh_mo", "bac_phong_sinh", "all", "mong_cai_crossings"} == gates
    # no stray temporary folders beside the output
    assert [p.name for p in tmp_path.iterdir()] == ["full"]


def test_result_does_not_depend_on_chunk_size():
    scen = load(SMALL)
    base = run(scen, reps=5, seed=11, workers=1, chunk_size=1, progress=False).summary
    for workers, chunk in ((1, 5), (2, 2), (2, 3)):
        other = run(scen, reps=5, seed=11, workers=workers, chunk_size=chunk, progress=False).summary
        pd.testing.assert_frame_equal(base, other)


def test_replication_seed_is_the_spawned_child():
    import numpy as np

    from sim.base.rng import replication_seed

    children = np.random.SeedSequence(5).spawn(10)
    for i in (0, 3, 9):
        assert np.array_equal(replication_seed(5, i).generate_state(4), children[i].generate_state(4))


def test_streams_are_the_seedsequence_children():
    # stream() mixes the child's entropy in compiled code; it must give exactly the generator
    # that SeedSequence(seed, spawn_key=(replication, name key)) seeds, for small and large seeds
    import numpy as np

    from sim.base.rng import _name_key, replication_seed, stream

    for seed in (0, 1, 20221130, 2**32 - 1, 2**32, 2**70 + 5, 2**130 + 17):
        for index in (0, 9, 2**31):
            for name in ("x", "arrivals/bac_luan_2/exit/truck", "service/km3_4/entry/truck/customs"):
                got = stream(replication_seed(seed, index), name)
                ref = np.random.SeedSequence(seed, spawn_key=(index, _name_key(name)))
                assert got.bit_generator.state == np.random.PCG64(ref).state
                assert np.array_equal(got.bit_generator.seed_seq.generate_state(6), ref.generate_state(6))
                assert np.array_equal(got.bit_generator.seed_seq.generate_state(3, np.uint64),
                                      ref.generate_state(3, np.uint64))
