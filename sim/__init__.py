"""bordersim: a simulator of the Quang Ninh (Vietnam) road border gates with China.

The public API, also what the ``bordersim`` command calls:

    from sim import load, run, write_results
    result = run(load("scenarios/baseline_2022.toml"), reps=20, seed=1)
    result.summary  # tidy table: gate, direction, metric, stage, mean, ci_low, ci_high

    from sim import sweep
    res = sweep("scenarios/baseline_2022.toml", design="sobol", points=32, reps=10, out="results/sobol")
"""

from .experiments.compare import Comparison, compare
from .base.errors import BordersimError, OverloadError, ScenarioError
from .experiments.experiment import Point, replicate, run_design
from .outputs.results import read_table, write_comparison, write_results
from .experiments.run import RunResult, run, run_replication
from .model.scenario import Scenario, from_dict, load
from .outputs.sweep import sweep
from .outputs.optimise import optimise

__all__ = [
    "BordersimError",
    "Comparison",
    "Point",
    "compare",
    "replicate",
    "run_design",
    "write_comparison",
    "OverloadError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "from_dict",
    "load",
    "optimise",
    "read_table",
    "run",
    "run_replication",
    "sweep",
    "write_results",
]

