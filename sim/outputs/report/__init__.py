"""``bordersim report``: one self-contained HTML page for a results folder, to open, read, print
and pass on without Python or a network.

A page is built from the folder alone: its tables, metadata.json, the kind its ``.bordersim``
marker names, and the copies of the scenario files a run keeps in it (``scenario_files/``) for
the comments and ``source`` fields behind each input. A results folder may come from anyone, so
no path it records is followed outside it, and a link in it is not read. Plots are the folder's PNGs, embedded as
``data:`` images (drawn from its tables in memory where the folder has none). Each kind of
folder is one function that turns the folder into a :class:`Page` of sections; the Jinja2
template (sim/outputs/templates/report.html.j2) lays out any page the same way. A kind is added by
writing its function in a module of its own and registering it with ``@kind("name")``.

The modules: ``page`` (the page, the folder it is read from, rendering), ``blocks`` (cells,
tables by month, warnings and plots the pages share), ``inputs`` (a scenario's files and inputs
with their sources), then a module per kind of folder: ``run``, ``compare``, ``calibration``,
``sweep``, ``optimise``. The report reads the folders sim.outputs.results and the sweep write; it imports no
writer of them.
"""

from .inputs import value_text
from .page import KINDS, Folder, Page, ReportError, build_report, folder_kind, kind, render

# each kind's module registers its page; imported in this order, which is the order an error
# lists the kinds in
from . import run, compare, calibration, sweep, optimise  # noqa: E402, F401, I001

__all__ = ["KINDS", "Folder", "Page", "ReportError", "build_report", "folder_kind", "kind", "render", "value_text"]
