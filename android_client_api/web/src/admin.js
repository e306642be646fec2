// Jobs (every user) and the admin's pages: every user's runs live, nodes with live telemetry,
// node registration. Jobs have no live feed on the broker for users, so their list is polled.
import { api } from "./api.js";
import { fmt, form, h, show, statusBadge, when } from "./ui.js";
import { PROGRESS, TELEMETRY, unpack } from "./wire.js";

const JOB_POLL_MS = 3000;

export function jobsPage(app) {
  const list = h("ul", { class: "list", id: "jobs" });
  const error = h("p", { class: "error", hidden: true });
  const bundle = h("input", { type: "file", accept: ".py,text/x-python", id: "f-bundle", "aria-label": "Job bundle" });

  async function load() {
    try {
      const { jobs } = await api("GET", "/jobs");
      error.hidden = true;
      list.replaceChildren(...(jobs.length ? jobs.map(row) : [h("li", { class: "muted" }, "No jobs yet.")]));
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  }

  function row(job) {
    const spec = job.spec || {};
    return h("li", { "data-job": job.job_id },
      h("div", { class: "row" }, h("b", { class: "grow mono" }, job.job_id.slice(0, 12)), statusBadge(job.state)),
      h("div", { class: "muted" }, `${spec.model_key} · pool ${job.pool} · ${spec.epochs} epoch(s)`
        + `${spec.gpus ? ` · ${spec.gpus} GPU` : ""}${job.node_id ? ` · on ${job.node_id}` : ""} · ${when(job.created_at)}`),
      job.reason ? h("div", { class: "muted" }, job.reason) : null,
      h("div", { class: "row" },
        job.run_id && job.state !== "queued" ? h("a", { href: `#/runs/${job.run_id}` }, "Its run") : null,
        job.state === "queued" ? h("button", { class: "secondary", onclick: async () => {
          try { await api("POST", `/jobs/${job.job_id}/cancel`); } catch (e) { error.textContent = e.message; error.hidden = false; }
          load();
        } }, "Cancel") : null));
  }

  show(
    h("h1", {}, "Jobs"),
    h("div", { class: "card" }, h("h2", {}, "Submit a job"),
      h("label", { htmlFor: "f-bundle" }, "Job bundle (a Python file with build() → model, train data, val data)"), bundle,
      form([
        { name: "model_key", label: "Model key", required: true },
        { name: "pool", label: "Pool", value: "default", required: true },
        { name: "epochs", label: "Epochs", type: "number", value: "1", required: true },
        { name: "batch_size", label: "Batch size", type: "number", value: "32", required: true },
        { name: "gpus", label: "GPUs", type: "number", value: "0" },
        { name: "gpu_memory_mb", label: "GPU memory per GPU (MB)", type: "number", value: "0" },
      ], "Submit", async (v) => {
        const file = bundle.files[0];
        if (!file) throw new Error("Choose the job bundle (a .py file) first.");
        const spec = { model_key: v.model_key.trim(), epochs: Number(v.epochs), batch_size: Number(v.batch_size),
                       gpus: Number(v.gpus || 0), gpu_memory_mb: Number(v.gpu_memory_mb || 0) };
        await api("POST", "/jobs", { pool: v.pool.trim(), spec, bundle_source: await file.text(), bundle_name: file.name });
        await load();
      })),
    error, h("div", { class: "card" }, list),
  );
  load();
  const timer = setInterval(() => { if (document.visibilityState === "visible") load(); }, JOB_POLL_MS);
  return () => clearInterval(timer);
}

export function adminPage(app) {
  const runs = h("ul", { class: "list", id: "all-runs" }, h("li", { class: "muted" }, "Runs appear here as they stream."));
  const nodes = h("ul", { class: "list", id: "nodes" });
  const users = h("ul", { class: "list", id: "users" });
  const created = h("div");
  const live = new Map(); // routing key -> row parts
  const nodeRows = new Map(); // node id -> telemetry element

  function runRow(key, msg) {
    let entry = live.get(key);
    if (!entry) {
      if (live.size === 0) runs.replaceChildren();
      const [owner, model, run] = key.split(".");
      entry = { status: h("span", {}, statusBadge("running")), progress: h("span", { class: "muted" }) };
      live.set(key, entry);
      runs.prepend(h("li", { "data-key": key }, h("div", { class: "row" },
        h("b", { class: "grow" }, owner), entry.status),
      h("div", { class: "mono muted" }, `${model} · ${run}`), entry.progress));
    }
    const last = unpack(msg).pop();
    if (last.type === "train_end") entry.status.replaceChildren(statusBadge(last.status));
    if (last.type === "batch" || last.type === "epoch_end") {
      const pct = last.progress == null ? "" : ` · ${Math.round(last.progress * 100)}%`;
      entry.progress.textContent = `epoch ${last.epoch + 1}${pct}${last.logs?.loss != null ? ` · loss ${fmt(Number(last.logs.loss))}` : ""}`;
    }
  }

  function telemetryText(t) {
    if (!t) return "No report yet.";
    const gpus = (t.gpus || []).map((g) => `GPU${g.index} ${g.name}: ${g.memory_used_mb}/${g.memory_total_mb} MB`
      + `${g.utilization_pct == null ? "" : `, ${fmt(g.utilization_pct)}%`}`);
    return [`CPU ${t.cpu_percent == null ? "–" : `${fmt(t.cpu_percent)}%`} of ${t.cpu_threads} threads`,
      `memory ${t.memory_available_mb} MB free of ${t.memory_total_mb} MB`, `disk ${t.disk_free_mb} MB free`,
      ...(gpus.length ? gpus : ["no GPU"]), t.job_id ? `running job ${t.job_id.slice(0, 12)}` : "idle"].join(" · ");
  }

  async function loadNodes() {
    try {
      const { nodes: all } = await api("GET", "/nodes");
      nodeRows.clear();
      nodes.replaceChildren(...(all.length ? all.map((n) => {
        const tele = h("div", { class: "telemetry" }, telemetryText(n.telemetry));
        nodeRows.set(n.node_id, tele);
        return h("li", { "data-node": n.node_id },
          h("div", { class: "row" }, h("b", { class: "grow" }, n.name),
            n.revoked_at ? h("span", { class: "status failed" }, "revoked") : h("button", { class: "secondary", onclick: async () => {
              await api("POST", `/nodes/${n.node_id}/revoke`).catch(() => {});
              loadNodes();
            } }, "Revoke")),
          h("div", { class: "muted" }, `${n.node_id} · pools ${(n.pools || []).join(", ") || "–"} · last seen ${when(n.last_seen) || "never"}`),
          tele);
      }) : [h("li", { class: "muted" }, "No nodes registered.")]));
    } catch (e) {
      nodes.replaceChildren(h("li", { class: "error" }, e.message));
    }
  }

  async function loadUsers() {
    try {
      const { users: all } = await api("GET", "/users");
      users.replaceChildren(...all.map((u) => h("li", { "data-user": u.username },
        h("div", { class: "row" }, h("b", { class: "grow" }, u.username),
          u.is_admin ? h("span", { class: "status running" }, "admin") : ""),
        h("div", { class: "muted" }, `${u.display_name || "–"} · since ${when(u.created_at)}`))));
    } catch (e) {
      users.replaceChildren(h("li", { class: "error" }, e.message));
    }
  }

  show(
    h("h1", {}, "Admin"),
    h("h2", {}, "Every training, live"), h("div", { class: "card" }, runs),
    h("h2", {}, "Nodes"), h("div", { class: "card" }, nodes),
    h("h2", {}, "Users"), h("div", { class: "card" }, users,
      h("p", { class: "muted" }, "New users sign up with an invitation link (Account page).")),
    h("div", { class: "card" }, h("h2", {}, "Register a node"),
      form([{ name: "name", label: "Node name", required: true }], "Create node token", async ({ name }, el) => {
        const node = await api("POST", "/nodes", { name });
        el.reset();
        created.replaceChildren(h("p", { class: "note" }, `Node ${node.name} (${node.node_id}): its token, shown this once:`),
          h("pre", { class: "node-token" }, node.token),
          h("p", { class: "muted" }, "On that machine:"),
          h("pre", {}, `FITWIRE_WEBHOOK_URL=${location.origin} FITWIRE_TOKEN=${node.token} fitwire agent start --pool default`));
        loadNodes();
      }), created),
  );
  loadNodes();
  loadUsers();
  const offRuns = app.live.subscribe(`/exchange/${PROGRESS}/#`, (msg, key) => runRow(key, msg));
  const offNodes = app.live.subscribe(`/exchange/${TELEMETRY}/node.*`, (msg) => {
    const el = nodeRows.get(msg.node_id);
    if (el) el.textContent = telemetryText(msg);
    else loadNodes();
  });
  return () => { offRuns(); offNodes(); };
}
