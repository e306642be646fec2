// Training a designed model (WebML): start a training (epochs, batch size, and for images the
// augmentation), then follow its run on the run page once an agent has started it; the model's
// trained models with their metrics, downloaded or deleted. Running trainings are on the Runs tab.
import { api } from "./api.js";
import { fmt, h, show, statusBadge, when } from "./ui.js";
import { bytes, confirmIn, download, modelTabs } from "./webml.js";

const WAIT_POLL_MS = 1000;

export function trainPage(app, key) {
  const title = h("h1", {}, "Train");
  const start = h("div", { class: "card", id: "start-training" });
  const trained = h("ul", { class: "list", id: "trained" });
  const trainedError = h("p", { class: "error", role: "alert", hidden: true });
  let timer = null;
  let gone = false;

  async function load() {
    let model;
    try {
      model = await api("GET", `/models/${key}`);
    } catch (e) {
      show(h("p", { class: "error" }, e.status === 404 ? "This model does not exist (any more)." : e.message), h("a", { href: "#/" }, "Your models"));
      return;
    }
    title.textContent = `Train: ${model.name}`;
    drawStart(model);
    loadTrained();
  }

  function range(id, label, min, max, step, value) {
    const out = h("output", { htmlFor: id }, String(value));
    const input = h("input", { id, type: "range", min, max, step, value, oninput: () => { out.textContent = input.value; } });
    return { input, el: h("div", {}, h("label", { htmlFor: id }, label, ": ", out), input) };
  }

  function drawStart(model) {
    const d = model.design;
    if (!d || d.state === "dynamic") {
      start.replaceChildren(h("h2", {}, "Start a training"), h("p", {}, d
        ? "This model is dynamic: shape it to a dataset on the Design page first."
        : "This model has no spec: design one first, or train it from your own script with the Tracker."),
      h("a", { href: `#/design/${encodeURIComponent(key)}` }, "Design"));
      return;
    }
    const images = d.spec.format === "images";
    const field = (id, label, attrs) => [h("label", { htmlFor: id }, label), h("input", { id, ...attrs })];
    const shear = range("f-shear", "Shear", 0, 1, 0.05, 0);
    const zoom = range("f-zoom", "Zoom", 0, 1, 0.05, 0);
    const rotation = range("f-rotation", "Rotation (degrees)", 0, 180, 5, 0);
    const flip = h("input", { type: "checkbox", id: "f-flip" });
    const fromRun = h("select", { id: "f-from-run" }, h("option", { value: "" }, "from scratch"),
      d.trained.map((t) => h("option", { value: t.run_id }, `from the model of run ${t.run_id.slice(0, 12)}…`)));
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const status = h("p", { class: "muted", role: "status", id: "train-status" });
    const button = h("button", { type: "submit" }, "Start training");
    const trainForm = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      error.hidden = true;
      button.disabled = true;
      const value = (id) => trainForm.querySelector(`#${id}`).value;
      const body = { epochs: Number(value("f-epochs")), batch_size: Number(value("f-batch")), pool: value("f-pool").trim() || "default" };
      if (fromRun.value) body.from_run = fromRun.value;
      if (images) {
        body.augmentation = { shear: Number(shear.input.value), zoom: Number(zoom.input.value),
                              rotation: Number(rotation.input.value), horizontal_flip: flip.checked };
      }
      try {
        const job = await api("POST", `/models/${key}/train`, body);
        status.textContent = `Queued as job ${job.job_id.slice(0, 12)}; waiting for an agent of pool ${job.pool} to start it…`;
        follow(job, status, () => { button.disabled = false; });
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
        button.disabled = false;
      }
    } },
    h("div", { class: "fields" },
      h("div", {}, ...field("f-epochs", "Epochs", { type: "number", min: 1, max: 100000, value: 5, required: true })),
      h("div", {}, ...field("f-batch", "Batch size", { type: "number", min: 1, max: 1000000, value: 32, required: true })),
      h("div", {}, ...field("f-pool", "Pool", { value: "default", autocomplete: "off" })),
      d.trained.length ? h("div", {}, h("label", { htmlFor: "f-from-run" }, "Start"), fromRun) : null),
    images ? h("fieldset", { class: "plain", id: "augmentation" }, h("legend", {}, "Augmentation (training images only)"),
      h("div", { class: "fields" }, shear.el, zoom.el, rotation.el),
      h("label", { class: "check" }, flip, "Flip horizontally at random")) : null,
    h("p", {}, button), status, error);
    start.replaceChildren(h("h2", {}, "Start a training"),
      h("p", { class: "muted" }, `On dataset ${d.dataset_name}; state ${d.state}.`), trainForm);
  }

  /** Polls the job until its run exists, then opens the run page; says why when the job ends first. */
  function follow(job, status, done) {
    const tick = async () => {
      if (gone) return;
      try {
        const run = await api("GET", `/runs/${job.run_id}`).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
        if (run) return app.go(`#/runs/${encodeURIComponent(job.run_id)}`);
        const now = await api("GET", `/jobs/${job.job_id}`);
        if (["succeeded", "failed", "stopped", "cancelled", "dead", "unschedulable"].includes(now.state)) {
          status.replaceChildren(`Job ${job.job_id.slice(0, 12)} ended `, statusBadge(now.state), now.reason ? `: ${now.reason}` : ".");
          return done();
        }
        status.textContent = `Job ${job.job_id.slice(0, 12)} is ${now.state}${now.node_id ? ` on ${now.node_id}` : ""}; `
          + "the run page opens as soon as the training starts…";
      } catch (e) {
        status.textContent = e.message;
      }
      timer = setTimeout(tick, WAIT_POLL_MS);
    };
    tick();
  }

  async function loadTrained() {
    try {
      const answer = await api("GET", `/models/${key}/trained`);
      trainedError.hidden = true;
      trained.replaceChildren(...(answer.trained.length ? answer.trained.map(row)
        : [h("li", { class: "muted" }, "No trained models yet: a training that completes leaves one here.")]));
    } catch (e) {
      trainedError.textContent = e.message;
      trainedError.hidden = false;
    }
  }

  function row(t) {
    const metrics = Object.entries(t.metrics || {}).map(([name, value]) => `${name} ${fmt(value)}`).join(" · ");
    const actions = h("div", { class: "row" },
      h("button", { class: "secondary", onclick: async () => {
        try { await download(`/models/${key}/trained/${t.run_id}/file`, `${t.run_id}.keras`); } catch (e) {
          trainedError.textContent = e.message;
          trainedError.hidden = false;
        }
      } }, "Download .keras"),
      h("a", { class: "button secondary", href: `#/test/${encodeURIComponent(key)}?run=${encodeURIComponent(t.run_id)}` }, "Test"),
      h("button", { class: "secondary", onclick: async () => {
        if (!await confirmIn(actions, `Delete the trained model of run ${t.run_id.slice(0, 12)}? This cannot be undone.`, "Delete for good")) return;
        try {
          await api("DELETE", `/models/${key}/trained/${t.run_id}`);
        } catch (e) {
          trainedError.textContent = e.message;
          trainedError.hidden = false;
        }
        load();
      } }, "Delete"));
    return h("li", { "data-run": t.run_id },
      h("div", { class: "row" }, h("a", { class: "grow mono", href: `#/runs/${encodeURIComponent(t.run_id)}` }, t.run_id.slice(0, 12)),
        h("span", { class: "muted" }, `${bytes(t.size)} · ${when(t.created_at)}`)),
      h("div", { class: "muted" }, metrics || "no metrics (its run was deleted)"), actions);
  }

  show(title, modelTabs(key, "train"), start,
    h("h2", {}, "Trained models"), trainedError, h("div", { class: "card" }, trained),
    h("p", { class: "muted" }, "Trainings in progress, with their epoch and metrics live, are on the ",
      h("a", { href: `#/models/${encodeURIComponent(key)}` }, "Runs"), " tab."));
  load();
  return () => { gone = true; clearTimeout(timer); };
}
