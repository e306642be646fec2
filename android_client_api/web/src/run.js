// A run: stored state at once (GET /runs/<id>/state), then live from the broker; STOP, learning
// rate and checkpoint signals with their acknowledgement. Messages only change `st`; drawing
// happens at most once per animation frame, so 50 batches/s cost one redraw per frame.
import { api } from "./api.js";
import { MetricChart } from "./chart.js";
import { banner, fmt, h, seconds, show, statusBadge, when } from "./ui.js";
import { PROGRESS, SIGNALS, learningRateProblem, num, progressKey, signal, signalKey, unpack } from "./wire.js";

const ACK_TIMEOUT_MS = 15000;
const RECHECK_MS = 20000; // the stored run, again: catches a deletion or an end missed while offline
const ACTIONS = { stop: "STOP", set_lr: "Learning rate", checkpoint: "Checkpoint" };

export function runPage(app, runId) {
  const user = app.session.user.username;
  const st = {
    run: null, epochs: new Map(), epoch: null, batch: null, progress: 0, lastLogs: {},
    endedLive: false, charts: new Map(), epochsChanged: true, frame: 0, gone: false,
  };
  const pending = new Map(); // signal id -> {label, sentAt, li, timer}
  let waitingHalt = null; // the acknowledged STOP whose halt (train_end) we time
  const draws = (window.fitwire.draws ||= []); // [sender ts, drawn at] for bench/bench_web_client.py

  // --- elements (built once, updated in place) ---
  const title = h("h1", {}, "Run");
  const status = h("span");
  const meta = h("div", { class: "muted" });
  const epochLabel = h("div", { id: "epoch-label" }, "Waiting for the first batch…");
  const epochBar = h("div");
  const epochProgress = h("div", { class: "progress", id: "epoch-progress", role: "progressbar", "aria-label": "epoch progress",
                                    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, epochBar);
  const runBar = h("div");
  const runProgress = h("div", { class: "progress", id: "run-progress", role: "progressbar", "aria-label": "run progress",
                                  "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, runBar);
  const stats = h("div", { class: "stats" });
  const table = h("table", { id: "epochs" });
  const charts = h("div", { class: "charts" });
  const signalLog = h("ul", { class: "list signal-log", id: "signal-log" });
  const ended = h("div", { id: "ended", role: "status" });
  const controls = h("div", { class: "card", id: "controls" });

  // --- state changes ---
  function schedule() {
    if (!st.frame) st.frame = requestAnimationFrame(draw);
  }

  function chart(name) {
    let c = st.charts.get(name);
    if (!c) {
      c = new MetricChart(name);
      st.charts.set(name, c);
      charts.append(c.el);
    }
    return c;
  }

  function addEpoch(epoch, logs, duration, x = epoch + 1) {
    st.epochs.set(epoch, { logs, duration });
    st.epochsChanged = true;
    for (const [name, value] of Object.entries(logs || {})) {
      if (name.startsWith("val_")) continue;
      chart(name).addEpoch(x, num(value), num(logs[`val_${name}`]));
    }
    for (const name of Object.keys(logs || {})) {
      if (name.startsWith("val_") && !(name.slice(4) in logs)) chart(name.slice(4)).addEpoch(x, null, num(logs[name]));
    }
  }

  function onMessage(msg) {
    if (msg.run_id !== runId) return;
    for (const event of unpack(msg)) apply(event);
    schedule();
  }

  function apply(m) {
    switch (m.type) {
      case "train_begin":
        if (st.run) Object.assign(st.run, { status: "running", epochs: m.epochs, steps: m.steps });
        break;
      case "epoch_begin":
        st.epoch = m.epoch; st.batch = null; st.progress = 0;
        break;
      case "batch":
        st.epoch = m.epoch; st.batch = m.batch;
        st.progress = m.progress ?? (st.run?.steps ? (m.batch + 1) / st.run.steps : st.progress);
        st.lastLogs = m.logs || {};
        if (m.progress != null) {
          for (const [name, value] of Object.entries(m.logs || {})) {
            if (!name.startsWith("val_")) chart(name).addBatch(m.epoch + m.progress, num(value));
          }
        }
        draws.length < 20000 && draws.push([m.ts, 0]);
        break;
      case "epoch_end": {
        // A STOP ends an epoch early (Keras still calls on_epoch_end): its point goes where it halted.
        const partial = st.epoch === m.epoch && st.batch !== null && st.progress < 1;
        if (!partial) st.progress = 1;
        st.epoch = m.epoch;
        addEpoch(m.epoch, m.logs, m.duration, partial ? m.epoch + st.progress : m.epoch + 1);
        break;
      }
      case "train_end":
        st.endedLive = true;
        if (st.run) Object.assign(st.run, { status: m.status, reason: m.reason, ended_at: new Date(m.ts * 1000).toISOString() });
        runEnded(m.status, m.reason);
        break;
      case "signal_ack":
        acknowledged(m);
        break;
      default: // heartbeat: nothing to draw
    }
  }

  // --- drawing, once per frame ---
  function draw() {
    st.frame = 0;
    if (!st.run) return;
    const run = st.run;
    status.replaceChildren(statusBadge(run.status));
    const steps = run.steps;
    const epochs = run.epochs;
    if (st.epoch !== null) {
      const batch = st.batch === null ? "" : ` · batch ${st.batch + 1}${steps ? ` of ${steps}` : ""}`;
      epochLabel.textContent = `Epoch ${st.epoch + 1}${epochs ? ` of ${epochs}` : ""}${batch}`;
    } else if (run.status !== "running") {
      epochLabel.textContent = `${st.epochs.size} epoch${st.epochs.size === 1 ? "" : "s"} done`;
    }
    const pct = run.status === "completed" ? 100 : Math.round(100 * Math.min(1, st.progress || 0));
    epochBar.style.width = `${pct}%`;
    epochProgress.setAttribute("aria-valuenow", pct);
    const done = epochs ? Math.min(1, ((st.epoch ?? st.epochs.size) + (st.epoch === null ? 0 : st.progress)) / epochs) : 0;
    const runPct = run.status === "completed" ? 100 : Math.round(100 * done);
    runBar.style.width = `${runPct}%`;
    runProgress.setAttribute("aria-valuenow", runPct);
    stats.replaceChildren(...Object.entries(st.lastLogs).map(([k, v]) => h("div", {}, k, h("b", {}, fmt(num(v))))));
    if (st.epochsChanged) drawTable();
    for (const c of st.charts.values()) c.draw();
    controls.hidden = run.status !== "running";
    const now = Date.now() / 1000;
    for (let i = draws.length - 1; i >= 0 && draws[i][1] === 0; i--) draws[i][1] = now;
  }

  function drawTable() {
    st.epochsChanged = false;
    const rows = [...st.epochs.entries()].sort((a, b) => a[0] - b[0]);
    const names = [...new Set(rows.flatMap(([, e]) => Object.keys(e.logs || {})))].sort();
    table.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", {}, "epoch"), names.map((n) => h("th", {}, n)), h("th", {}, "time"))),
      h("tbody", {}, rows.map(([epoch, e]) => h("tr", {}, h("td", {}, epoch + 1),
        names.map((n) => h("td", {}, fmt(num(e.logs?.[n])))), h("td", {}, e.duration == null ? "–" : seconds(e.duration * 1000))))),
    );
  }

  // --- stored state: at once, after a reconnect, and now and then ---
  async function load() {
    let state;
    try {
      state = await api("GET", `/runs/${encodeURIComponent(runId)}/state`);
    } catch (e) {
      if (e.status === 404) return gone();
      banner(e.message, "bad");
      return;
    }
    const wasEnded = st.endedLive && st.run;
    st.run = wasEnded ? { ...state.run, status: st.run.status, reason: st.run.reason } : state.run;
    title.textContent = st.run.name;
    meta.replaceChildren(h("a", { href: `#/models/${encodeURIComponent(st.run.model_key)}` }, st.run.model_key),
      ` · started ${when(st.run.started_at)}${st.run.host ? ` on ${st.run.host}` : ""}`,
      st.run.framework ? ` · ${st.run.framework} ${st.run.framework_version}` : "");
    for (const e of state.epochs) addEpoch(e.epoch, e.logs, e.duration);
    if (st.epoch === null && state.last_epoch) {
      st.lastLogs = state.last_epoch.logs;
    }
    if (st.run.status !== "running" && !st.endedLive) showEnded(st.run.status, st.run.reason);
    schedule();
  }

  async function recheck() {
    try {
      const run = await api("GET", `/runs/${encodeURIComponent(runId)}`);
      if (st.run && run.status !== "running" && st.run.status === "running") {
        Object.assign(st.run, run);
        runEnded(run.status, run.reason);
        schedule();
      }
    } catch (e) {
      if (e.status === 404) gone();
    }
  }

  function gone() {
    st.gone = true;
    cleanup();
    show(h("h1", {}, "Run not found"), h("p", { class: "error", role: "alert" }, "This run does not exist: it was deleted, or it is not yours."),
      h("a", { href: "#/" }, "Your models"));
  }

  // --- the end ---
  function showEnded(runStatus, reason) {
    ended.replaceChildren(h("div", { class: "card" },
      h("b", {}, `Training ${runStatus}`), reason ? ` — ${reason}` : ""));
  }

  function runEnded(runStatus, reason) {
    showEnded(runStatus, reason);
    if (waitingHalt) {
      waitingHalt.halt.textContent = ` · halted ${seconds(performance.now() - waitingHalt.sentAt)} after it was sent (${runStatus})`;
      waitingHalt = null;
    }
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.li.append(" · the run ended before answering");
      pending.delete(id);
    }
    notify(`${st.run?.name || "A training"} ${runStatus}`, reason || "");
  }

  function notify(titleText, body) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const options = { body, icon: "/app/icon-192.png", data: { url: location.href } };
    navigator.serviceWorker?.ready.then((reg) => reg.showNotification(titleText, options))
      .catch(() => new Notification(titleText, options));
  }

  // --- signals ---
  async function send(action, value) {
    const run = st.run;
    const msg = signal(action, run.model_key, run.run_id, app.live.login?.login || user, value);
    const label = ACTIONS[action] + (value === undefined ? "" : ` ${value}`);
    const answer = h("span", { class: "ack" }, " · sending…");
    const halt = h("span", { class: "halt" });
    const li = h("li", { "data-action": action }, h("b", {}, label), answer, halt);
    signalLog.prepend(li);
    const entry = { label, sentAt: performance.now(), li, answer, halt, action, timer: 0 };
    pending.set(msg.id, entry);
    try {
      await app.live.send(`/exchange/${SIGNALS}/${signalKey(run.owner, run.model_key, run.run_id)}`, msg);
    } catch (e) {
      pending.delete(msg.id);
      answer.textContent = ` · not sent: ${e.message}`;
      answer.className = "ack error";
      return;
    }
    if (pending.has(msg.id)) answer.textContent = " · sent, waiting for the run…";
    entry.timer = setTimeout(() => {
      if (!pending.delete(msg.id)) return;
      answer.textContent = ` · no answer from the run within ${ACK_TIMEOUT_MS / 1000} s: it may have ended or be stuck.`;
      answer.className = "ack error";
    }, ACK_TIMEOUT_MS);
  }

  function acknowledged(ack) {
    const entry = pending.get(ack.signal_id);
    if (!entry) return; // someone else's signal (the CLI, another tab): the log shows only ours
    pending.delete(ack.signal_id);
    clearTimeout(entry.timer);
    const after = seconds(performance.now() - entry.sentAt);
    entry.answer.textContent = ack.ok
      ? ` · acknowledged after ${after}${ack.detail ? `: ${ack.detail}` : ""}`
      : ` · refused by the run after ${after}: ${ack.detail || "no reason given"}`;
    entry.answer.className = ack.ok ? "ack note" : "ack error";
    if (ack.ok && entry.action === "stop") waitingHalt = entry;
  }

  function buildControls() {
    const confirmRow = h("div", { class: "row", hidden: true },
      h("span", { class: "grow" }, "Stop this training at its next batch?"),
      h("button", { class: "danger", onclick: () => { confirmRow.hidden = true; stopButton.hidden = false; send("stop"); } }, "Yes, stop it"),
      h("button", { class: "secondary", onclick: () => { confirmRow.hidden = true; stopButton.hidden = false; } }, "Cancel"));
    const stopButton = h("button", { class: "danger", onclick: () => { confirmRow.hidden = false; stopButton.hidden = true; } }, "Stop training");
    const lrError = h("p", { class: "error", hidden: true });
    const lrInput = h("input", { type: "text", inputMode: "decimal", placeholder: "e.g. 0.0001", id: "lr-input",
                                 "aria-label": "new learning rate" });
    const lrForm = h("form", { class: "row", onsubmit: (event) => {
      event.preventDefault();
      const value = Number(lrInput.value.trim());
      const problem = lrInput.value.trim() === "" ? "Type a learning rate first." : learningRateProblem(value);
      lrError.hidden = !problem;
      lrError.textContent = problem || "";
      if (!problem) send("set_lr", value);
    } }, h("div", { class: "grow" }, lrInput), h("button", { type: "submit" }, "Set learning rate"));
    const notifyButton = "Notification" in window && Notification.permission === "default"
      ? h("button", { class: "secondary", onclick: async () => {
        await Notification.requestPermission();
        notifyButton.hidden = true;
      } }, "Notify me when it ends") : null;
    controls.replaceChildren(h("h2", {}, "Steer"), h("div", { class: "row" }, stopButton,
      h("button", { class: "secondary", onclick: () => send("checkpoint") }, "Save a checkpoint"), notifyButton),
    confirmRow, lrForm, lrError);
  }

  // --- wiring ---
  buildControls();
  controls.hidden = true;
  show(
    title, h("div", { class: "row" }, status, meta), ended,
    h("div", { class: "card" }, epochLabel, epochProgress, h("div", { class: "muted", style: "margin-top:8px" }, "Whole run"), runProgress),
    stats, controls, signalLog,
    h("h2", {}, "Charts"), charts,
    h("h2", {}, "Epochs"), h("div", { class: "table-wrap card" }, table),
  );
  // Subscribe before loading: nothing published while the state is on its way is lost.
  const unsubscribe = app.live.subscribe(`/exchange/${PROGRESS}/${progressKey(user, "*", runId)}`, onMessage);
  const offLive = app.live.on((event) => { if (event === "reconnected") load(); });
  const timer = setInterval(recheck, RECHECK_MS);
  const onVisible = () => { if (document.visibilityState === "visible") recheck(); };
  document.addEventListener("visibilitychange", onVisible);
  load();

  function cleanup() {
    unsubscribe();
    offLive();
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
    cancelAnimationFrame(st.frame);
    for (const p of pending.values()) clearTimeout(p.timer);
  }
  return () => { if (!st.gone) cleanup(); };
}
