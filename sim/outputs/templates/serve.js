// The page of `bordersim serve`: its state is its address (each changed box, the chart's gate and
// figure), each change asks /api/run for it (a stream of JSON lines: progress, then the result or
// the errors by control) and draws what comes back. A newer change aborts the older request.
document.addEventListener("DOMContentLoaded", () => {
  "use strict";
  const form = document.getElementById("controls");
  const gate = document.getElementById("gate");
  const queue = document.getElementById("queue");
  const progress = document.getElementById("progress");
  const status = document.getElementById("status");
  const download = document.getElementById("download");
  const GREY = "rgba(90, 100, 110, 1)", GREY_BAND = "rgba(90, 100, 110, 0.18)";
  const BLUE = "rgba(31, 111, 197, 1)", BLUE_BAND = "rgba(31, 111, 197, 0.2)";
  const CONFIG = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  let client = sessionStorage.getItem("bordersim-client");
  if (!client) {
    client = Math.random().toString(36).slice(2) + Date.now().toString(36);
    sessionStorage.setItem("bordersim-client", client);
  }
  // what tests and curious readers can look at: the last result, the state of the page
  const page = window.bordersim = {status: "idle", result: null, errors: {}, runs: 0, general: []};
  let controller = null, timer = null;

  function query() {
    const q = new URLSearchParams();
    for (const el of form.elements) {
      if (el.name && el.value.trim()) q.set(el.name, el.value.trim());
    }
    if (gate.value !== "all") q.set("gate", gate.value);
    if (queue.value !== "queue_mean") q.set("queue", queue.value);
    return q;
  }

  function remember() {
    const q = query().toString();
    history.replaceState(null, "", q ? "?" + q : location.pathname);
    download.href = "/api/scenario.toml" + (q ? "?" + q : "");
  }

  function say(text, done, total) {
    status.textContent = text;
    progress.max = total || 1;
    progress.value = done || 0;
  }

  function showErrors(errors, general) {
    page.errors = errors || {};
    page.general = general || [];
    for (const box of document.querySelectorAll("[data-error-for]")) {
      const key = box.dataset.errorFor;
      box.textContent = page.errors[key] || "";
      box.parentElement.classList.toggle("bad", Boolean(page.errors[key]));
      const group = box.closest("details");
      if (page.errors[key] && group) group.open = true;  // a message is never hidden in a closed gate
    }
    const unplaced = Object.entries(page.errors).filter(([k]) => !document.querySelector(`[data-error-for="${CSS.escape(k)}"]`));
    document.getElementById("general").textContent = [...page.general, ...unplaced.map(([, v]) => v)].join("\n");
  }

  function list(id, items) {
    const ul = document.getElementById(id);
    ul.replaceChildren(...items.map((t) => Object.assign(document.createElement("li"), {textContent: t})));
  }

  function rows(tbody, items) {
    tbody.replaceChildren(...items.map((d) => {
      const tr = document.createElement("tr");
      if (d.excludes_zero) tr.className = "clear";
      for (const [text, cls] of [[d.name, ""], [d.label, ""], [d.base_text, "num"], [d.alt_text, "num"], [d.diff_text, "num"]]) {
        tr.appendChild(Object.assign(document.createElement("td"), {textContent: text, className: cls}));
      }
      return tr;
    }));
  }

  function band(x, s, name, line, fill) {
    return [
      {x, y: s.p05, mode: "lines", line: {width: 0}, hoverinfo: "skip", showlegend: false, name: name + " 5 %"},
      {x, y: s.p95, mode: "lines", line: {width: 0}, fill: "tonexty", fillcolor: fill, hoverinfo: "skip",
       name: name + " 5–95 %", showlegend: false},
      {x, y: s.mean, mode: "lines", line: {color: line, width: 2}, name},
    ];
  }

  function drawQueues() {
    const r = page.result;
    if (!r || !window.Plotly) return;
    const g = gate.value, m = queue.value;
    const base = (r.queues.base[g] || {})[m], alt = (r.queues.alt[g] || {})[m];
    if (!base || !alt) return;
    const traces = [...band(r.dates, base, "scenario", GREY, GREY_BAND), ...band(r.dates, alt, "changed", BLUE, BLUE_BAND)];
    Plotly.react("queue-chart", traces, {
      margin: {l: 52, r: 10, t: 10, b: 36}, hovermode: "x unified", legend: {orientation: "h", y: 1.12},
      yaxis: {title: {text: "vehicles waiting"}, rangemode: "tozero"}, xaxis: {type: "date"},
    }, CONFIG);
  }

  function drawTimes() {
    const r = page.result;
    if (!r || !window.Plotly) return;
    const names = r.time_in_system.map((t) => t.name);
    const bar = (k, name, color) => ({
      type: "bar", name, x: names, y: r.time_in_system.map((t) => t[k][0]), marker: {color},
      error_y: {type: "data", symmetric: false, array: r.time_in_system.map((t) => t[k][2] - t[k][0]),
                arrayminus: r.time_in_system.map((t) => t[k][0] - t[k][1])},
    });
    Plotly.react("tis-chart", [bar("base", "scenario", GREY), bar("alt", "changed", BLUE)], {
      barmode: "group", margin: {l: 52, r: 10, t: 10, b: 60}, legend: {orientation: "h", y: 1.12},
      yaxis: {title: {text: "mean time in system, h"}, rangemode: "tozero"}, xaxis: {automargin: true},
    }, CONFIG);
  }

  function render(r) {
    page.result = r;
    list("findings", r.findings);
    list("warnings", r.warnings);
    rows(document.querySelector("#differences tbody"), r.differences);
    const costs = document.getElementById("costs");
    costs.hidden = r.costs.length === 0;
    rows(costs.querySelector("tbody"), r.costs);
    document.getElementById("command").textContent = r.command;
    drawQueues();
    drawTimes();
  }

  function handle(event) {
    if (event.type === "progress") {
      const what = event.total ? `${event.phase}: ${event.done} of ${event.total} replications` : event.phase;
      say(what + "…", event.done, event.total);
    } else if (event.type === "result") {
      showErrors({}, []);
      render(event);
      page.runs += 1;
      page.status = "done";
      say(`${event.reps} replications each, seed ${event.seed}: ${event.wall_s} s`, 1, 1);
    } else if (event.type === "errors" || event.type === "busy") {
      showErrors(event.errors, event.general);
      page.status = "error";
      say(event.type === "busy" ? "busy: try again" : "not run: see the message beside the control", 0, 1);
    }
  }

  async function run() {
    remember();
    if (controller) controller.abort();
    const mine = controller = new AbortController();
    page.status = "running";
    document.body.classList.add("running");
    say("sent…", 0, 1);
    try {
      const response = await fetch("/api/run?" + query().toString() + "&client=" + encodeURIComponent(client),
                                   {signal: mine.signal});
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const text = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 1);
          if (text && mine === controller) handle(JSON.parse(text));
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") {
        page.status = "error";
        showErrors({}, [`no answer from the server: ${err.message}`]);
        say("no answer from the server", 0, 1);
      }
    } finally {
      if (mine === controller) document.body.classList.remove("running");
    }
  }

  form.addEventListener("input", () => {
    page.status = "changed";
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });
  for (const select of [gate, queue]) {
    select.addEventListener("change", () => { remember(); drawQueues(); });
  }
  document.getElementById("reset").addEventListener("click", (e) => {
    e.preventDefault();
    form.reset();
    for (const el of form.elements) if (el.name) el.value = "";
    run();
  });
  run();
});
