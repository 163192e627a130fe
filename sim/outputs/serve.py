"""`bordersim serve`: a local web page on which a planner moves a control and sees what it does.

The scenario is loaded and its workers started once; each state of the page's controls becomes
``--set`` lines (sim.outputs.whatif), run against the scenario as given on common random numbers
(sim.experiments.compare: replication i of both with the same seed) on a pool of bordersim
workers kept for the server's life (sim.experiments.workers: they die with it). What a request
may start is bounded: at most MAX_REPS replications a change, MAX_JOBS runs in flight, RUNNING of
them preparing or summarising at once (their replications share the pool's cores); a page's
newer change supersedes its older one (the older run stops where nobody else waits for it), and
results are kept by (changes, seed, replications) in a bounded cache, as are the replications of
the scenario as given. Starlette serves the page and its API, uvicorn runs it; plotly.js comes
from the plotly package, served by the app itself, so the page needs no network beyond this machine.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import BordersimError, ScenarioError
from ..experiments.compare import Comparison, prepare
from ..experiments.experiment import KeptPool, Point, run_design
from ..experiments.workers import new_pool, resolve_workers, stop_now
from ..model.plan import compile_plan
from ..model.scenario import Scenario, with_sets
from . import whatif

MAX_JOBS = 8  # runs in flight (running or waiting for a thread); a change past them is refused as busy
RUNNING = 2  # runs that prepare, collect and summarise at once
RESULTS_KEPT = 64  # pages' results kept (a few hundred kB each)
REPLICATIONS_KEPT = 4  # sets of replications kept with their tables (about 0.1 MB per replication of the baseline)
POLL_S = 0.05  # how often a page's stream looks at its run
PAGE_PARAMS = ("gate", "queue")  # the page's own state in its address: the chart's gate and queue figure
DEFAULT_PORT = 8000
LOCAL = "127.0.0.1"


class ServeError(BordersimError):
    """A server that cannot start as asked (a port in use, an address that is not this machine's)."""


class Busy(Exception):
    """More runs in flight than MAX_JOBS."""


class Cancelled(Exception):
    """A run nobody waits for any more."""


class Kept(OrderedDict):
    """A bounded cache, least recently used out first (a plain OrderedDict: functools' caches
    memoise a function, and what is kept here is put by the runs that compute it)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_kept(self, key) -> Any:
        with self.lock:
            if key not in self:
                return None
            self.move_to_end(key)
            return self[key]

    def keep(self, key, value) -> None:
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


@dataclass
class Job:
    """One run of a page's changes: its progress, then its result or its errors."""

    changes: whatif.Changes
    watchers: int = 0
    phase: str = "waiting"
    done: int = 0
    total: int = 0
    outcome: dict | None = None  # the page's result, or {"errors": ..., "general": [...]}
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    timings: dict[str, float] = field(default_factory=dict)  # seconds in each phase
    _since: float = field(default_factory=time.perf_counter)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()

    def enter(self, phase: str) -> None:
        """The run goes on to ``phase``; the time of the one before is kept in ``timings``."""
        now = time.perf_counter()
        self.timings[self.phase] = self.timings.get(self.phase, 0.0) + now - self._since
        self.phase, self._since = phase, now


class _JobExecutor(KeptPool):
    """The server's pool as run_design sees it for one run (sim.experiments.experiment.KeptPool:
    each task carries its plan), the replications done count into the run's progress, and once
    the run is cancelled it stops handing them back and cancels what has not started."""

    def __init__(self, pool: Executor, job: Job):
        super().__init__(pool)
        self.job = job

    def result_of(self, future):
        while True:
            self.job.check()
            try:
                out = future.result(timeout=POLL_S)
                break
            except FutureTimeout:
                continue
        self.job.done += len(out[1])
        return out


@dataclass
class Replications:
    """A scenario's replications at a seed, and the tables the page draws of them."""

    results: list
    tables: whatif.Tables


class Runner:
    """The server's work: the scenario, its worker pool, the runs in flight and what is kept."""

    def __init__(self, scenario: Scenario, scenario_arg: str, workers: int | None = None):
        self.base = scenario
        self.arg = scenario_arg
        self.controls = whatif.controls(scenario)
        self.workers, _ = resolve_workers(workers, 1 << 30)
        self.pool = new_pool(self.workers)
        self.pool.submit(int).result()  # the workers start now, forked before any thread of the server's
        self.threads = ThreadPoolExecutor(RUNNING, thread_name_prefix="bordersim-serve")
        self.lock = threading.Lock()  # the runs in flight and the pages' latest requests
        self.model = threading.Lock()  # deriving scenarios, compiling plans: one at a time
        self.results = Kept(RESULTS_KEPT)
        self.replications = Kept(REPLICATIONS_KEPT)
        self.jobs: dict[tuple, Job] = {}
        self.latest: dict[str, object] = {}  # a page (its client id) -> its newest request
        self.stopping = threading.Event()

    # ------------------------------------------------------------ runs

    def warm(self) -> None:
        """Run the page's first state (the scenario as given, the default replications and seed)
        now, for the server: the workers load the compiled engine meanwhile, and the first page
        that opens finds it kept or under way."""
        self.submit(whatif.read_state(self.base, {}))

    def submit(self, changes: whatif.Changes) -> tuple[dict | None, Job | None]:
        """The kept result of these changes, or the run that computes it (one per set of changes:
        a second page asking the same watches the same run). Busy past MAX_JOBS runs."""
        kept = self.results.get_kept(changes.key)
        if kept is not None:
            return kept, None
        with self.lock:
            job = self.jobs.get(changes.key)
            if job is None or job.cancelled.is_set():
                if len(self.jobs) >= MAX_JOBS:
                    raise Busy()
                job = Job(changes)
                self.jobs[changes.key] = job
                self.threads.submit(self._work, job)
            job.watchers += 1
            return None, job

    def release(self, job: Job) -> None:
        """A page no longer waits for ``job``; a run nobody waits for stops."""
        with self.lock:
            job.watchers -= 1
            if job.watchers <= 0 and not job.finished.is_set():
                job.cancelled.set()

    def _work(self, job: Job) -> None:
        key = job.changes.key
        try:
            job.check()
            job.outcome = self._outcome(job)
            self.results.keep(key, job.outcome)
        except Cancelled:
            pass
        except BrokenProcessPool:
            self._renew_pool()
            job.outcome = {"errors": {}, "general": ["a worker process died (the server started new ones): change a "
                                                     "value to run again"]}
        except BordersimError as exc:
            job.outcome = {"errors": {}, "general": [exc.one_line()]}
        except Exception as exc:  # a bug: said on the page and on the server's terminal, the server goes on
            traceback.print_exc(file=sys.stderr)
            job.outcome = {"errors": {}, "general": [f"internal error: {exc!r}"]}
        finally:
            job.finished.set()
            with self.lock:
                if self.jobs.get(key) is job:
                    del self.jobs[key]

    def _outcome(self, job: Job) -> dict:
        changes = job.changes
        job.enter("checking the changes")
        t0 = time.perf_counter()
        with self.model:
            try:
                scenarios, warnings = prepare(self.base, [self.base], changes.reps, allow_overload=True,
                                              sets=changes.sets or None)
            except ScenarioError as exc:
                return {"errors": self._blame(job, exc), "general": []} if changes.lines else \
                    {"errors": {}, "general": [exc.one_line()]}
            for s in scenarios:
                compile_plan(s)
        job.check()
        reps = self._replications(job, scenarios)
        job.enter("summarising")
        cmp = Comparison(scenarios, changes.seed, changes.reps, "fast", [r.results for r in reps],
                         time.perf_counter() - t0, warnings, self.workers)
        out = whatif.page_result(cmp, [r.tables for r in reps], changes, whatif.command_line(self.arg, changes))
        job.enter("done")
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        out["timings"] = {k: round(v, 3) for k, v in job.timings.items() if k != "waiting"}
        return out

    def _replications(self, job: Job, scenarios: list[Scenario]) -> list[Replications]:
        """The replications of the scenario as given and of its change: those kept as they are
        (the scenario as given runs once per seed and count), the others run together on the
        pool. Without changes the change is the scenario itself, run once."""
        changes = job.changes
        keys = [((), changes.seed, changes.reps)] + ([changes.key] if changes.sets else [])
        got = [self.replications.get_kept(k) for k in keys]
        todo = [i for i, r in enumerate(got) if r is None]
        if todo:
            job.total = changes.reps * len(todo)
            job.enter("running")
            results = run_design([Point(scenarios[i]) for i in todo], changes.reps, changes.seed, "fast",
                                 executor=_JobExecutor(self.pool, job), workers=self.workers, progress=False)
            job.check()
            job.enter("summarising the replications")
            for i, res in zip(todo, results):
                got[i] = Replications(res, whatif.own_tables(res, scenarios[i]))
                self.replications.keep(keys[i], got[i])
        return got if changes.sets else got * 2

    def _blame(self, job: Job, exc: ScenarioError) -> dict[str, str]:
        """Which control's change the scenario refuses: each alone (the error of all of them
        together where none alone is refused), so the message stands beside its control."""
        errors = {}
        for key, line in job.changes.lines.items():
            job.check()
            try:
                with_sets(self.base, [line], name_sets=False)
            except ScenarioError as own:
                errors[key] = own.one_line()
        return errors or {"": exc.one_line()}

    def _renew_pool(self) -> None:
        stop_now(self.pool)
        self.pool = new_pool(self.workers)

    def scenario_file(self, changes: whatif.Changes) -> str:
        """The what-if as a scenario file, once the scenario takes its changes (a ScenarioError else)."""
        if changes.sets:
            with self.model:
                with_sets(self.base, changes.sets)
        return whatif.scenario_toml(self.base, changes)

    # ------------------------------------------------------------ the server's life

    def stop(self) -> None:
        """Stop every run: the pages' streams end, the threads finish their step and stop."""
        self.stopping.set()
        with self.lock:
            for job in self.jobs.values():
                job.cancelled.set()

    def close(self) -> None:
        """Stop every run and the workers (killed at once; nothing of theirs is kept)."""
        self.stop()
        self.threads.shutdown(wait=False, cancel_futures=True)
        stop_now(self.pool)


# ---------------------------------------------------------------- the web app


def _plotly() -> tuple[bytes, bytes, str]:
    """plotly.js as the plotly package bundles it: the script, gzipped, its version."""
    import plotly
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs().encode()
    return script, gzip.compress(script, 6), plotly.__version__


def _page_html(runner: Runner, query: dict[str, str]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from ..base.outdir import version

    env = Environment(loader=PackageLoader("sim.outputs", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    model = runner.base.nominal
    groups = []
    names = {g: gate.name for g, gate in model.gates.items()}
    names.update({cid: f"corridor: {c.name or cid}" for cid, c in model.corridors.items()})
    for group in dict.fromkeys(c.group for c in runner.controls):
        groups.append({"id": group, "name": names.get(group, group),
                       "controls": [c for c in runner.controls if c.group == group]})
    changed = {c.group for c in runner.controls if any(query.get(p) for p in c.params)}
    css, script = (env.loader.get_source(env, name)[0] for name in ("serve.css", "serve.js"))
    return env.get_template("serve.html.j2").render(css=css, script=script,
        scenario=runner.base, arg=runner.arg, groups=groups, query=query, changed=changed, version=version(),
        reps=whatif.DEFAULT_REPS, max_reps=whatif.MAX_REPS, min_reps=whatif.MIN_REPS, seed=whatif.DEFAULT_SEED,
        gates=[{"id": g, "name": n} for g, n in names.items() if g in model.gates])


def make_app(runner: Runner):
    """The Starlette app: the page (/), plotly.js, the run of a page's state (/api/run, a stream
    of progress lines and then the result, as JSON lines) and its scenario file (/api/scenario.toml)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    plotly: dict[str, Any] = {}
    plotly_lock = threading.Lock()

    def plotly_bundle() -> tuple[bytes, bytes, str]:
        with plotly_lock:
            if not plotly:
                plotly["bundle"] = _plotly()
            return plotly["bundle"]

    threading.Thread(target=plotly_bundle, name="bordersim-plotly", daemon=True).start()

    def state(request) -> tuple[dict[str, str], str]:
        items = dict(request.query_params)
        return items, items.pop("client", "")

    async def page(request):
        items, _client = state(request)
        html = await run_in_threadpool(_page_html, runner, items)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def plotly_js(request):
        script, zipped, ver = await run_in_threadpool(plotly_bundle)
        headers = {"Cache-Control": "public, max-age=86400", "ETag": f'"plotly-{ver}"', "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(zipped, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
        return Response(script, media_type="text/javascript", headers=headers)

    def line(event: dict) -> bytes:
        return (json.dumps(whatif.json_safe(event), allow_nan=False) + "\n").encode()

    async def run(request):
        items, client = state(request)
        token = object()  # this request, the page's newest: an older one of the same page ends
        if client:
            with runner.lock:
                runner.latest[client] = token
        changes = whatif.read_state(runner.base, items, PAGE_PARAMS)
        notes = [f"'{k}' in the address is no control of this page (left out)" for k in changes.unknown]
        if changes.errors:
            return StreamingResponse(iter([line({"type": "errors", "errors": changes.errors, "general": notes})]),
                                     media_type="application/x-ndjson")
        try:
            kept, job = runner.submit(changes)
        except Busy:
            return StreamingResponse(iter([line({"type": "busy", "general": [
                f"the server is running {MAX_JOBS} changes already; try again in a moment"]})]),
                media_type="application/x-ndjson", status_code=503)
        if kept is not None:
            return StreamingResponse(iter([line(_final(kept, notes))]), media_type="application/x-ndjson")

        async def events():
            seen = None
            try:
                while True:
                    if job.finished.is_set():
                        yield line(_final(job.outcome, notes) if job.outcome is not None else
                                   {"type": "superseded"})
                        return
                    if runner.stopping.is_set() or (client and runner.latest.get(client) is not token):
                        yield line({"type": "superseded"})
                        return
                    now = (job.phase, job.done, job.total)
                    if now != seen:
                        seen = now
                        yield line({"type": "progress", "phase": job.phase, "done": job.done, "total": job.total})
                    await asyncio.sleep(POLL_S)
            finally:
                runner.release(job)
                with runner.lock:
                    if client and runner.latest.get(client) is token:
                        del runner.latest[client]

        return StreamingResponse(events(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    async def download(request):
        items, _client = state(request)
        changes = whatif.read_state(runner.base, items, PAGE_PARAMS)
        if changes.errors:
            return PlainTextResponse("\n".join(changes.errors.values()) + "\n", status_code=400)
        try:
            text = await run_in_threadpool(runner.scenario_file, changes)
        except ScenarioError as exc:
            return PlainTextResponse(exc.one_line() + "\n", status_code=400)
        name = f"{runner.base.name}_{whatif.ID}.toml"
        return Response(text, media_type="application/toml; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", page), Route("/plotly.min.js", plotly_js), Route("/api/run", run),
                             Route("/api/scenario.toml", download)])


def _final(outcome: dict, notes: list[str]) -> dict:
    if "errors" in outcome:
        return {"type": "errors", "errors": outcome["errors"], "general": notes + outcome["general"]}
    return {"type": "result", **outcome, "warnings": notes + outcome["warnings"]}


def bind(host: str, port: int) -> socket.socket:
    """The server's listening socket, or one line saying why it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(None, "--host", f"'{host}' is not an address of this machine ({exc})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(None, "--port" if exc.errno == 98 else "--host",
                         f"cannot listen on {host} port {port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(path: Path, scenario_arg: str, host: str = LOCAL, port: int = DEFAULT_PORT, workers: int | None = None,
          warn=None, ready=None) -> None:
    """Serve the page of the scenario at ``path`` until Ctrl-C or SIGTERM (which raise in the
    caller as they would without the server: the runs and the workers are stopped first).
    ``ready(url)`` is called once the page can be opened."""
    import uvicorn

    from ..model.scenario import load

    if not 0 <= port <= 65535:
        raise ServeError(None, "--port", f"must be from 0 to 65535 (got {port})")
    scenario = load(path)
    sock = bind(host, port)
    if host != LOCAL and warn is not None:
        warn(f"serving on {host}: anyone who can reach this machine there can run simulations on it (no login); "
             f"the default, {LOCAL}, serves this machine alone")
    runner = Runner(scenario, scenario_arg, workers)
    runner.warm()

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            runner.stop()
            super().handle_exit(sig, frame)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if ready is not None and not self.should_exit:
                bound = sock.getsockname()
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                ready(f"http://{shown}:{bound[1]}/")

    config = uvicorn.Config(make_app(runner), log_config=None, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    server = Server(config)
    try:
        server.run(sockets=[sock])
        # uvicorn raises the signal that stopped it again once it has shut down, for the caller's
        # handler (Ctrl-C, SIGTERM). That does not reach us where the handler is not Python's (a
        # process started with Ctrl-C ignored, as a shell's background job is), or where asyncio
        # took the signal as its task ended: the stop then ends here as the caller expects (its
        # handler, else KeyboardInterrupt), never as a silent return
        import signal

        captured = getattr(server, "_captured_signals", [])
        if captured:  # the last signal, as uvicorn raises the captured ones last first
            handler = signal.getsignal(captured[-1])
            if callable(handler):
                handler(captured[-1], None)
            raise KeyboardInterrupt()
    finally:
        runner.close()
        sock.close()
