"""A `bordersim serve` process for the tests: started on a free port (its address read from the
line it prints when the page can be opened), asked over HTTP as the page asks, stopped with
SIGTERM. Run as a script, it takes the README's screenshot of the page (docs/serve.png):
``python -m tests.serve_page [SCENARIO] [PNG]``."""

from __future__ import annotations

import contextlib
import json
import re
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small_2022.toml"
ADDRESS = re.compile(r"at (http://\S+/) ")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Served:
    """A running `bordersim serve`: its process and the page's address."""

    def __init__(self, *args: str, timeout: float = 120.0, ctrl_c_ignored: bool = False):
        # ctrl_c_ignored: started as a shell's background job is, with SIGINT ignored
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ctrl_c_ignored else None
        self.proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "serve", *args, "--port", "0"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        match = ADDRESS.search(line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"bordersim serve did not start: {line!r} {self.proc.stderr.read()!r}")
        self.url = match.group(1)

    def get(self, path: str, params: dict | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
        url = self.url + path.lstrip("/") + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def run(self, params: dict) -> list[dict]:
        """The events /api/run streams for a page's state, the last one the result or errors."""
        _status, body = self.get("api/run", params)
        return [json.loads(line) for line in body.decode().splitlines() if line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str]:
        """Stop it with ``sig``: its exit code and what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return self.proc.returncode, self.proc.stderr.read()

    def __enter__(self) -> "Served":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(browser, condition: str, timeout: float = 120.0):
    """Evaluate ``condition`` in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(condition)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"the page never had {condition}: {browser.evaluate('JSON.stringify(window.bordersim && {status: bordersim.status, errors: bordersim.errors, general: bordersim.general})')}")


def screenshot(scenario: str | None, png: Path, query: str = "lanes.km3_4.exit.customs=4&limit.bac_luan_2=1.2") -> None:
    """The page of a change, as a laptop shows it, into ``png`` (a small PNG: 8-bit palette)."""
    import io

    from PIL import Image  # matplotlib's own dependency

    from .browser import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        raise SystemExit("no chromium: apt-get install chromium")
    with Served(*([scenario] if scenario else [])) as served, Browser(binary, 1280, 860) as browser:
        browser.open(served.url + "?" + query)
        wait_for(browser, "window.bordersim && bordersim.status === 'done' && bordersim.runs > 0")
        time.sleep(1.0)  # plotly's transitions
        shot = browser.screenshot({"x": 0, "y": 0, "width": 1280, "height": 860})
    Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=128).save(png, optimize=True)


if __name__ == "__main__":
    screenshot(sys.argv[1] if len(sys.argv) > 1 else None,
               Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "serve.png")
