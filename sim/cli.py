"""The ``bordersim`` command: parses arguments and calls the Python API."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import warnings
from pathlib import Path

from .base.errors import MESSAGE_LIMIT, BordersimError, shorten
from .model.library import TARGETS as LIBRARY_TARGETS
from .outputs.formats import wrapped
from .experiments.experiment import ENGINES
from .experiments.run import DEFAULT_REPS, DEFAULT_SEED

DEFAULT = "calibration/fitted_2022.toml"  # sim.model.library.DEFAULT: the calibrated 2022 baseline
SET_HELP = "change one input for this run, PATH an input's name (as validate lists them, e.g. " \
           "gates.km3_4.exit.stages.customs.lanes): PATH=VALUE gives a value (a number or a range {uniform = " \
           "[lo, hi]}); PATH+=N, PATH-=N and PATH*=F change the scenario's value (both ends of a range; a fitted " \
           "input row by row); repeatable, in order"


def default_targets() -> Path:
    """The 2022 targets (sim.model.library: ./calibration/, then the library installed with bordersim)."""
    from .model.library import default_targets

    return default_targets()


def default_scenario() -> Path:
    """The calibrated baseline: ./calibration/ first, then the library installed with bordersim (sim.model.library)."""
    from .model.library import default_scenario

    return default_scenario()


def scenario_path(arg: str | None) -> Path:
    """A scenario argument: a file, or a name in ./scenarios/ or the installed library; none: the calibrated baseline."""
    from .model.library import find

    return find(arg) if arg else default_scenario()


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{shorten(text)}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with bad input in one line, as every other input error (argparse prints its
    usage block first); ``--help`` still shows the usage. The subcommands' parsers are of this
    class too (argparse makes them of the parent's)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    from .base.outdir import version

    p = _Parser(prog="bordersim", description="Simulate the Quang Ninh road border gates.")
    p.add_argument("--version", action="version", version=f"bordersim {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run replications of a scenario and write tables and plots")
    r.add_argument("scenario", nargs="?",
                   help=f"scenario TOML file or library name (default: {DEFAULT}, the calibrated 2022 baseline)")
    r.add_argument("--reps", type=_whole_number(1), default=DEFAULT_REPS, help=f"replications (default {DEFAULT_REPS})")
    r.add_argument("--seed", type=_whole_number(0), default=DEFAULT_SEED, help=f"root seed (default {DEFAULT_SEED})")
    r.add_argument("--out", help="output folder (default results/<scenario name>/)")
    r.add_argument("--workers", type=_whole_number(1), help="parallel processes (default: one per core)")
    r.add_argument("--engine", choices=ENGINES, default="fast",
                   help="fast: compiled recursions (default); des: the SimPy discrete-event model")
    r.add_argument("--allow-overload", action="store_true",
                   help="simulate even where demand exceeds capacity over the horizon (the backlog grows)")
    r.add_argument("--no-plots", action="store_true", help="write tables only")
    r.add_argument("--no-report", action="store_true", help="no report.html beside the tables")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    r.add_argument("--timings", action="store_true",
                   help="print where the time went: CPU per replication by phase, compiling the plan, writing")
    r.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    cp = sub.add_parser("compare", help="run scenarios on common random numbers and compare them with the first")
    cp.add_argument("base", help="the base scenario (TOML)")
    cp.add_argument("alternatives", nargs="+", help="scenarios to compare with the base")
    cp.add_argument("--reps", type=_whole_number(2), default=20, help="replications of each scenario (default 20)")
    cp.add_argument("--seed", type=_whole_number(0), default=DEFAULT_SEED, help=f"root seed (default {DEFAULT_SEED})")
    cp.add_argument("--out", help="output folder (default results/compare_<base>_vs_<alternatives>/)")
    cp.add_argument("--workers", type=_whole_number(1), help="parallel processes (default: one per core)")
    cp.add_argument("--engine", choices=ENGINES, default="fast", help="fast (default) or des")
    cp.add_argument("--allow-overload", action="store_true", help="simulate unstable loads (the backlog grows)")
    cp.add_argument("--no-plots", action="store_true", help="write tables only")
    cp.add_argument("--no-report", action="store_true", help="no report.html beside the tables")
    cp.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    cp.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="as for run, applied to every alternative (not the base): a quick what-if is "
                         "'compare BASE BASE --set ...'")
    sw = sub.add_parser("sweep", help="run a design of parameter points on common random numbers; sensitivity")
    sw.add_argument("scenario", nargs="?", help=f"scenario TOML file (default: {DEFAULT}, the calibrated 2022 baseline)")
    sw.add_argument("--param", action="append", default=[], metavar="PATH=SPEC",
                    help="an input to vary, by its name (as validate lists them), SPEC a list 1,2,3, an integer "
                         "range 1..4 or an interval 5:40; PATH alone: an uncertain input over its own range (one "
                         "a fitted ensemble sets: over the ensemble's 5-95 %% range); repeatable; none: every "
                         "uncertain input of the scenario over its range, but those a fitted ensemble sets, which "
                         "keep its parameter sets")
    sw.add_argument("--design", choices=("grid", "lhs", "sobol", "morris"),
                    help="grid (every combination of the lists; the default when every SPEC is a list), lhs "
                         "(Latin hypercube), sobol (Saltelli's design, Sobol indices; the default otherwise), "
                         "morris (Morris screening)")
    sw.add_argument("--points", type=_whole_number(1),
                    help="lhs: points (default 100); sobol: base N, a power of two, giving N x (params + 2) points "
                         "(default 32); morris: trajectories, N x (params + 1) points (default 10)")
    sw.add_argument("--reps", type=_whole_number(1), default=20, help="replications per point (default 20)")
    sw.add_argument("--seed", type=_whole_number(0), default=DEFAULT_SEED,
                    help=f"root seed of the replications and of the design (default {DEFAULT_SEED})")
    sw.add_argument("--out", help="output folder; rerunning the same command resumes it (default results/sweep_<scenario>/)")
    sw.add_argument("--workers", type=_whole_number(1),
                    help="parallel processes (default: one per core; with --scheduler dask, the LocalCluster's)")
    sw.add_argument("--scheduler", choices=("local", "dask"),
                    help="local: a pool of processes on this machine (default); dask: a Dask cluster")
    sw.add_argument("--address", help="with --scheduler dask: a running scheduler, tcp://HOST:PORT "
                                      "(default: a LocalCluster on this machine)")
    sw.add_argument("--output", action="append", default=[], metavar="METRIC[@GATE]",
                    help="an output for the ranking, the plots and the report (default: time_in_system_mean_h of "
                         "every gate); repeatable")
    sw.add_argument("--engine", choices=ENGINES, default="fast", help="fast (default) or des")
    sw.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    sw.add_argument("--allow-overload", action="store_true",
                    help="run points whose demand exceeds a stage's capacity over the horizon")
    sw.add_argument("--no-plots", action="store_true", help="write tables only")
    sw.add_argument("--no-report", action="store_true", help="no report.html beside the tables")
    sw.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    op = sub.add_parser("optimise", help="search a scenario's levers for the least cost (or a metric) that meets "
                                         "constraints, on common random numbers")
    op.add_argument("scenario", help="scenario TOML file or library name with [levers.<id>] tables")
    op.add_argument("--objective", default="lever_cost",
                    help="what to minimise: lever_cost (default: the levers' annual cost, with --constraint), "
                         "total_cost (levers' cost + the waiting cost cost_total_vnd a year) or METRIC[@GATE] "
                         "(no gate: all gates together)")
    op.add_argument("--constraint", action="append", default=[], metavar="'METRIC[@GATE] <= LIMIT'",
                    help="a limit on a trial's mean, <= or >=; no gate: at every gate; repeatable")
    op.add_argument("--lever", action="append", default=[], metavar="ID",
                    help="search only these levers (the others stay at their base); repeatable; default: all")
    op.add_argument("--trials", type=_whole_number(1), default=100, help="trials (default 100)")
    op.add_argument("--reps", type=_whole_number(2), default=20, help="replications per trial (default 20)")
    op.add_argument("--batch", type=_whole_number(1), default=10,
                    help="trials proposed at a time and run together (default 10; the results depend on it, "
                         "not on --workers)")
    op.add_argument("--seed", type=_whole_number(0), default=DEFAULT_SEED,
                    help=f"root seed of the replications, the sampler and the evidence (default {DEFAULT_SEED})")
    op.add_argument("--out", help="output folder; rerunning the same command resumes it "
                                  "(default results/optimise_<scenario>/)")
    op.add_argument("--workers", type=_whole_number(1), help="parallel processes (default: one per core)")
    op.add_argument("--scheduler", choices=("local", "dask"), help="local (default) or dask, as for sweep")
    op.add_argument("--address", help="with --scheduler dask: a running scheduler, tcp://HOST:PORT")
    op.add_argument("--engine", choices=ENGINES, default="fast", help="fast (default) or des")
    op.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    op.add_argument("--no-plots", action="store_true", help="write tables only")
    op.add_argument("--no-report", action="store_true", help="no report.html beside the tables")
    op.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    v = sub.add_parser("validate", help="check scenario files and print their uncertain inputs")
    v.add_argument("scenarios", nargs="*", help=f"scenario TOML files or library names (default: {DEFAULT}, "
                                                "as for run)")
    v.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    rp = sub.add_parser("report", help="write one self-contained HTML page for a results folder")
    rp.add_argument("folder", help="a folder of results: a run, a comparison, or calibration/")
    rp.add_argument("-o", "--out", help="the HTML file to write (default: FOLDER/report.html)")
    sv = sub.add_parser("serve", help="a local web page: move a control, see what it does to the queues")
    sv.add_argument("scenario", nargs="?", help=f"scenario TOML file or library name (default: {DEFAULT}, as for run)")
    sv.add_argument("--port", type=_whole_number(0), default=8000, help="port to listen on (default 8000; 0: any free)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine alone; any other with a warning)")
    sv.add_argument("--workers", type=_whole_number(1), help="worker processes (default: one per core)")
    c = sub.add_parser("calibrate", help="fit the uncertain inputs to observed figures, or --check the fit")
    c.add_argument("targets", nargs="?", help=f"targets TOML file (default: calibration/{LIBRARY_TARGETS})")
    c.add_argument("--check", action="store_true",
                   help="run the fitted scenario and test every target; exit 1 if one fails")
    c.add_argument("--population", type=_whole_number(10), default=None,
                   help="parameter sets per ABC-SMC generation (default 200)")
    c.add_argument("--generations", type=_whole_number(1), default=None, help="generations at most (default 8)")
    c.add_argument("--budget", type=_whole_number(10), default=None,
                   help="simulated parameter sets at most, the prior sample and all generations (default "
                        "40,000; at least 2 x --population)")
    c.add_argument("--reps-per-draw", type=_whole_number(1), default=None,
                   help="replications averaged for each parameter set (default 2)")
    c.add_argument("--quantile", type=float, default=None,
                   help="each generation's threshold: this quantile of the last one's distances (default 0.3)")
    c.add_argument("--scenario", help="with --check: the scenario to test (default: the fitted one)")
    c.add_argument("--reps", type=_whole_number(2), default=None, help="with --check: replications (default 200)")
    c.add_argument("--engine", choices=ENGINES, default="fast", help="with --check: the engine")
    c.add_argument("--seed", type=_whole_number(0), help="root seed (default: the targets file's)")
    c.add_argument("--workers", type=_whole_number(1), help="parallel processes (default: one per core)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _warn(message: str) -> None:
    print(f"bordersim: warning: {message}", file=sys.stderr)


def _warn_overridden(scen, sets: list[str]) -> None:
    """A warning for each --set input that dated adjustments replace for part of the horizon."""
    from .model.adjust import set_warnings

    for w in set_warnings(scen.nominal, sets):
        _warn(w)


def _out_arg(text: str | None, option: str = "--out") -> Path | None:
    """An --out or -o given on the command line (None: not given); an empty one is refused
    rather than taken as the default."""
    if text is None:
        return None
    if not text.strip():
        from .base.errors import OutputError

        raise OutputError(None, option, "is empty; give a folder (or file) name, e.g. results/my_run")
    return Path(text)


def _cmd_run(args) -> int:
    from .model import scenario as sc
    from .base.outdir import atomic_dir
    from .outputs.results import prepare_writing, write_run
    from .experiments.run import run
    from .outputs.text import summary_table, timings_line

    path = scenario_path(args.scenario)
    out = _out_arg(args.out)
    scen = sc.load(path, sets=args.set)
    _warn_overridden(scen, args.set)
    if args.set:  # another scenario than the file's: its own name, its changes said, a folder of its own
        scen = sc.with_sets(sc.load(path), args.set)
        scen = scen.renamed(f"{scen.name}_set")
    out = out or Path("results") / (scen.name + changes_tag(args.set))
    # the folder is this run's from now: refused now, not after the replications, and so is
    # another command that would write there meanwhile
    with atomic_dir(out, "run") as staged:
        result = run(
            scen, reps=args.reps, seed=args.seed, workers=args.workers, engine=args.engine,
            allow_overload=args.allow_overload, progress=False if args.quiet else None, warn=_warn,
            while_waiting=lambda: prepare_writing(not args.no_plots),
        )
        written = time.perf_counter()
        write_run(result, staged, make_plots=not args.no_plots, report=not args.no_report)
        written = time.perf_counter() - written
    if args.timings:
        print(wrapped(timings_line(result, written)))
    if not args.quiet:
        changed = f" ({path.name} with --set {'; '.join(args.set)})" if args.set else ""
        print(wrapped(f"{scen.name}{changed}: {args.reps} replications, seed {args.seed}, engine {args.engine}, "
                      f"{result.wall_s:.1f} s; per gate, the mean with its 95 % confidence interval"))
        print(summary_table(result.summary, scen))
        print(f"written to {out}/")
    if staged.replaced:
        print(f"replaced earlier results in {out}/")
    return 0


def compare_folder(names: list[str], sets: list[str] | None = None) -> Path:
    """results/compare_<base>_vs_<alt>[_vs_<alt> ...], shortened when the names are long; with
    --set changes, tagged by them (changes_tag)."""
    name = "compare_" + "_vs_".join(names)
    if len(name) > 120:
        name = f"compare_{names[0][:60]}_vs_{len(names) - 1}_scenarios"
    return Path("results") / (name + changes_tag(sets))


def changes_tag(sets: list[str] | None) -> str:
    """'' without --set; else '-' and six hex digits of the changes, so that two what-ifs of one
    scenario go to folders of their own by default, and the same one again to the same folder."""
    if not sets:
        return ""
    import hashlib

    return "-" + hashlib.sha256("\n".join(sets).encode()).hexdigest()[:6]


def _cmd_compare(args) -> int:
    from .model import scenario as sc
    from .experiments.compare import compare, distinct_names
    from .outputs.text import ELSEWHERE as COMPARE_ELSEWHERE
    from .outputs.text import corridor_moves, headline_table
    from .base.outdir import atomic_dir
    from .outputs.results import write_comparison

    given_out = _out_arg(args.out)
    base = sc.load(scenario_path(args.base))
    alts = [sc.load(scenario_path(p)) for p in args.alternatives]
    sets = args.set  # applied to the alternatives by compare(), which names them as distinct_names does
    out = given_out or compare_folder(distinct_names([base.name, *(a.name for a in alts)], bool(sets)), sets)
    with atomic_dir(out, "compare") as staged:  # this comparison's from now, as for run
        cmp = compare(base, alts, reps=args.reps, seed=args.seed, engine=args.engine, workers=args.workers,
                      allow_overload=args.allow_overload, progress=False if args.quiet else None, warn=_warn,
                      sets=sets)
        write_comparison(cmp, staged, make_plots=not args.no_plots, report=not args.no_report)
    if not args.quiet:
        print(wrapped(f"{len(cmp.scenarios)} scenarios on common random numbers: {args.reps} replications each, "
                      f"seed {args.seed}, engine {args.engine}, {cmp.wall_s:.1f} s"))
        print(wrapped("per gate, both directions: base, alternative and the difference alternative - base with "
                      "its 95 % interval; * the interval excludes 0; shares in %, their differences in "
                      "percentage points (pp)"))
        for alt in cmp.names[1:]:
            print(f"\n{alt} against {cmp.base.name}:")
            print(headline_table(cmp, alt))
            if moves := corridor_moves(cmp, alt):
                print(moves)
        print()
        print(wrapped(f"more: {COMPARE_ELSEWHERE}"))
        print(f"written to {out}/")
    if staged.replaced:
        print(f"replaced earlier results in {out}/")
    return 0


def _resumable(args, kind: str, pieces: str, run, report) -> int:
    """A command whose folder the same command resumes (sweep, optimise): its default folder
    results/KIND_NAME, a line when it resumes, and on Ctrl-C or SIGTERM once it has started,
    where what is done is kept. run(path, out, on_start): its result; report(result): what it prints."""
    path = scenario_path(args.scenario)
    out = _out_arg(args.out)
    if out is None:
        from .model import scenario as sc

        out = Path("results") / f"{kind}_{sc.load(path, sets=args.set).name}"
    state = {}

    def started(done: int, todo: int) -> None:
        state["started"] = True
        if done and not args.quiet:
            print(f"resuming {out}/: {done} {pieces} done before, {todo} to run", flush=True)

    try:
        result = run(path, out, started)
    except KeyboardInterrupt as exc:
        if not state.get("started"):
            raise
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"bordersim: {how}; the {pieces} finished so far are kept in {out}/: run the same command to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if not args.quiet:
        print(report(result))
    return 0


def _cmd_sweep(args) -> int:
    from .outputs.sweep import sweep
    from .outputs.text import sweep_report

    def run(path, out, started):
        return sweep(path, params=args.param, design=args.design, points=args.points, reps=args.reps,
                     seed=args.seed, engine=args.engine, out=out, workers=args.workers, scheduler=args.scheduler,
                     address=args.address, outputs=args.output, sets=args.set, allow_overload=args.allow_overload,
                     make_plots=not args.no_plots, report=not args.no_report, progress=False if args.quiet else None,
                     warn=_warn, on_start=started)

    return _resumable(args, "sweep", "points", run, sweep_report)


def _cmd_optimise(args) -> int:
    from .outputs.optimise import optimise
    from .outputs.text import optimise_report

    def run(path, out, started):
        return optimise(path, objective=args.objective, constraints=args.constraint, levers=args.lever,
                        trials=args.trials, reps=args.reps, batch=args.batch, seed=args.seed, engine=args.engine,
                        out=out, workers=args.workers, scheduler=args.scheduler, address=args.address,
                        sets=args.set, make_plots=not args.no_plots, report=not args.no_report,
                        progress=False if args.quiet else None, warn=_warn, on_start=started)

    return _resumable(args, "optimise", "trials", run, optimise_report)


def _cmd_report(args) -> int:
    from .base.outdir import atomic_file, holding, read_marker
    from .outputs.report import build_report

    folder = Path(args.folder)
    out = _out_arg(args.out, "-o") or folder / "report.html"
    own = read_marker(folder) if folder.is_dir() else None
    # the folder's own report.html may go into it, nothing else into a results folder; while it
    # is written, the folder is held (a rerun that would replace it is refused meanwhile)
    into_folder = own is not None and out.parent.is_dir() and out.parent.samefile(folder)
    with holding(folder) if into_folder else contextlib.nullcontext():
        html = build_report(folder)
        with atomic_file(out, own.get("kind") if into_folder else None, record=False) as tmp:
            tmp.write_text(html, encoding="utf-8")
    print(f"written to {out}")
    return 0


def _cmd_validate(args) -> int:
    from .experiments import capacity
    from .model import scenario as sc

    for path in [scenario_path(a) for a in args.scenarios] or [default_scenario()]:
        scen = sc.load(path, sets=args.set)
        _warn_overridden(scen, args.set)
        for w in capacity.check(scen, allow_overload=True):
            print(f"bordersim: warning: {w}", file=sys.stderr)
        if scen.nominal.levers:
            from .experiments.levers import LeverSpace, describe_lever

            LeverSpace.of(scen)  # every lever's paths and choices checked against the scenario, before "ok"
        print(f"{path}: ok ({len(scen.nominal.gates)} gates, {len(scen.nominal.flows())} flows, "
              f"{len(scen.ranges)} uncertain inputs)")
        if scen.ensemble is not None:
            print(f"  ensemble {scen.ensemble_file}: {len(scen.ensemble)} parameter sets of "
                  f"{scen.ensemble.shape[1]} inputs, one set per replication")
        from_ensemble = set() if scen.ensemble is None else set(scen.ensemble.columns)
        if scen.nominal.levers:
            print(f"  levers ({len(scen.nominal.levers)}: what a planner controls):")
            for lid, lever in scen.nominal.levers.items():
                print(f"    {lid}: {describe_lever(lever, scen.by_name, lid)}")
            print(f"  uncertain inputs ({len(scen.ranges)}: what each replication draws):")
        for r in scen.ranges:
            how = " (from the ensemble)" if r.name() in from_ensemble else ""
            print(f"  {r.name()}: {r.kind} {list(r.values)}{how}")
    return 0


def _cmd_serve(args) -> int:
    from .outputs.serve import serve

    path = scenario_path(args.scenario)
    try:
        serve(path, args.scenario or str(path), host=args.host, port=args.port, workers=args.workers, warn=_warn,
              ready=lambda url: print(f"bordersim serve: {path} at {url} (Ctrl-C to stop)", flush=True))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the way a server is stopped, after its runs and workers
        print(f"bordersim: serve stopped ({'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl-C'})", file=sys.stderr)
    return 0


def _cmd_calibrate(args) -> int:
    from .experiments import calibrate as cal
    from .outputs.calibration import check_outputs, check_table, write_calibration

    targets = cal.load_targets(Path(args.targets) if args.targets else default_targets())
    progress = False if args.quiet else None
    if args.check:
        for opt in ("population", "generations", "budget", "reps_per_draw", "quantile"):
            if getattr(args, opt) is not None:
                raise cal.CalibrationError(None, f"--{opt.replace('_', '-')}", "applies to a calibration, not to --check")
        rows = cal.check(targets, args.scenario, reps=args.reps or cal.DEFAULT_CHECK_REPS, seed=args.seed,
                         engine=args.engine, workers=args.workers, progress=progress)
        scen = args.scenario or targets.fitted_path
        print(f"{scen}: {args.reps or cal.DEFAULT_CHECK_REPS} replications, engine {args.engine}; "
              f"targets from {targets.path} (fit: mean within tolerance; validate: observed inside the 90 % band)")
        print(check_table(rows))
        failed = [r.target.name for r in rows if not r.ok()]
        missed = [r for r in rows if r.target.known_miss is not None and r.ok()]
        for r in missed:
            print(f"known miss: {r.target.name}: {r.target.known_miss}")
        if failed:
            print(f"bordersim: calibration check failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        print("all targets hold" if not missed else
              f"all fit targets hold; validation targets inside their bands but {len(missed)} known miss"
              f"{'es' if len(missed) > 1 else ''} ({', '.join(r.target.name for r in missed)})")
        return 0
    for opt in ("scenario", "reps"):
        if getattr(args, opt) is not None:
            raise cal.CalibrationError(None, f"--{opt}", "applies to --check only")
    if args.engine != "fast":
        raise cal.CalibrationError(None, "--engine", "a calibration runs on the fast engine; --engine is for --check")
    check_outputs(targets)  # refuse now, not after the draws
    result = cal.calibrate(targets, population=args.population or cal.DEFAULT_POPULATION,
                           generations=args.generations or cal.DEFAULT_GENERATIONS,
                           budget=args.budget or cal.DEFAULT_BUDGET,
                           reps_per_draw=args.reps_per_draw or cal.DEFAULT_REPS_PER_DRAW,
                           quantile=cal.DEFAULT_QUANTILE if args.quantile is None else args.quantile,
                           seed=args.seed, workers=args.workers, progress=progress)
    written = write_calibration(result)
    ident = result.identification()
    print(f"{targets.path}: {len(result.epsilons)} generations of {len(result.population)}, "
          f"{result.simulations:,} simulations, last threshold {result.epsilons[-1]:.2f} tolerances, "
          f"{result.wall_s:.1f} s")
    print("pinned down by the data: " + (", ".join(ident[ident.identified]["input"]) or "none"))
    print("written: " + ", ".join(str(p) for p in written))
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it stops as it does on Ctrl-C."""


def _on_sigterm(_signum, _frame):
    raise Terminated()


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (numpy's, a library's) as one line, not the raw two-line form with its source."""
    text = " ".join(str(message).split())
    print(f"bordersim: warning: {shorten(text, MESSAGE_LIMIT)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top-level command; the subcommand's help lists what it takes
        command = getattr(args, "command", None)
        helped = f"{parser.prog} {command}" if command else parser.prog
        parser.exit(2, f"{parser.prog}: unrecognized arguments: {' '.join(extra)} (see '{helped} --help')\n")
    with warnings.catch_warnings():  # worker processes forked inside inherit the one-line form
        warnings.showwarning = _warning_line
        return _dispatch(args)


def _dispatch(args) -> int:
    handle_term = _main_thread()  # signal handlers can only be set from the main thread
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if handle_term else None
    try:
        commands = {"run": _cmd_run, "compare": _cmd_compare, "sweep": _cmd_sweep, "optimise": _cmd_optimise,
                    "validate": _cmd_validate, "calibrate": _cmd_calibrate, "report": _cmd_report,
                    "serve": _cmd_serve}
        return commands[args.command](args)
    except BordersimError as exc:
        print(f"bordersim: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except MemoryError:  # the estimate before the work was short of what it took (an allocation failed)
        from .experiments.run import memory_available

        limit = memory_available()
        print(f"bordersim: error: ran out of memory{f' ({limit[1]} at the end)' if limit else ''}; no results "
              "written: run fewer replications", file=sys.stderr)
        return 2
    except Terminated:
        print("bordersim: terminated; no results written", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("bordersim: interrupted; no results written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if handle_term:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
