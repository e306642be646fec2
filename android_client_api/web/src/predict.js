// Testing a trained model (WebML): one prediction by an agent (POST /models/<key>/predict). Images:
// a file or a photo from the phone's camera, answered with the class, the top classes and their
// probabilities, and training images of that class. CSV: a form of the dataset's input columns.
import { api } from "./api.js";
import { fmt, h, show, when } from "./ui.js";
import { apiImage, dataUrl, modelTabs } from "./webml.js";

const MAX_IMAGE_BYTES = 700_000; // base64 grows it by a third; the JSON body's limit is 1 MiB
const MAX_SIDE = 1024;

/** The image as base64, scaled down (JPEG) when it would not fit in one request. */
async function imageBase64(file) {
  const url = await dataUrl(file);
  if (file.size <= MAX_IMAGE_BYTES) return { url, base64: url.slice(url.indexOf(",") + 1) };
  const img = new Image();
  await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error("That file is not an image this browser can read.")); img.src = url; });
  const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(img.naturalWidth * scale);
  canvas.height = Math.round(img.naturalHeight * scale);
  canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
  const small = canvas.toDataURL("image/jpeg", 0.9);
  return { url: small, base64: small.slice(small.indexOf(",") + 1) };
}

function barOf(p) {
  const fill = h("div");
  fill.style.width = `${(p * 100).toFixed(1)}%`;
  return fill;
}

export function testPage(app, key, params) {
  const title = h("h1", {}, "Test");
  const body = h("div");
  const result = h("div", { id: "prediction", role: "status" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const runSelect = h("select", { id: "f-run" });
  const pool = h("input", { id: "f-predict-pool", value: "default", autocomplete: "off" });

  function fail(e) {
    error.textContent = e.message;
    error.hidden = false;
  }

  async function predict(input, button) {
    error.hidden = true;
    button.disabled = true;
    result.replaceChildren(h("p", { class: "muted" }, "Asking an agent…"));
    const started = performance.now();
    try {
      const answer = await api("POST", `/models/${key}/predict`, { run_id: runSelect.value, pool: pool.value.trim() || "default", ...input });
      drawAnswer(answer, performance.now() - started);
    } catch (e) {
      result.replaceChildren();
      fail(e);
    } finally {
      button.disabled = false;
    }
  }

  function drawAnswer(a, ms) {
    const meta = h("p", { class: "muted" }, `Answered in ${(ms / 1000).toFixed(2)} s by ${a.node_id}`
      + `${a.load_s ? ` (model loaded in ${fmt(a.load_s)} s)` : ""}.`);
    if ("class_name" in a) {
      result.replaceChildren(h("div", { class: "card" }, h("p", {}, "It is ", h("b", { class: "big", id: "predicted-class" }, a.class_name)),
        h("table", { id: "top" }, h("tbody", {}, a.top.map((t) => h("tr", {}, h("td", {}, t.class),
          h("td", { class: "bar-cell" }, h("div", { class: "progress" }, barOf(t.probability))),
          h("td", {}, `${(t.probability * 100).toFixed(1)}%`))))),
        meta,
        a.examples?.length ? [h("h2", {}, `Training images of ${a.class_name}`), h("div", { class: "thumbs small" }, a.examples.map((member) =>
          h("figure", {}, apiImage(`/datasets/${a.dataset_id}/thumbnail?${new URLSearchParams({ member, size: "96" })}`, member))))] : null));
    } else {
      result.replaceChildren(h("div", { class: "card" }, h("h2", {}, "Outputs"),
        h("table", { id: "outputs" }, h("tbody", {}, Object.entries(a.outputs).map(([name, value]) => h("tr", {},
          h("td", {}, name), h("td", {}, h("b", {}, typeof value === "number" ? fmt(value) : String(value))),
          h("td", { class: "muted" }, a.probabilities?.[name] != null ? `p ${(a.probabilities[name] * 100).toFixed(1)}%` : ""))))),
        meta));
    }
  }

  function imageForm() {
    const preview = h("img", { class: "preview", alt: "the image to classify", hidden: true });
    const file = h("input", { type: "file", id: "f-image", accept: "image/*", capture: "environment", class: "file-hidden",
                              "aria-label": "Image to classify" });
    const button = h("button", { disabled: true }, "Classify");
    let chosen = null;
    file.addEventListener("change", async () => {
      error.hidden = true;
      try {
        chosen = await imageBase64(file.files[0]);
        preview.src = chosen.url;
        preview.hidden = false;
        button.disabled = false;
      } catch (e) { fail(e); }
    });
    button.onclick = () => chosen && predict({ image: chosen.base64 }, button);
    return h("div", { class: "card" }, h("h2", {}, "An image"),
      h("div", { class: "row" }, h("label", { class: "button secondary", htmlFor: "f-image" }, "Take a photo or choose an image"), file, button),
      preview);
  }

  async function csvForm(design) {
    const dataset = await api("GET", `/datasets/${design.dataset_id}`);
    const sample = await api("GET", `/datasets/${design.dataset_id}/rows?offset=0&limit=500`).catch(() => null);
    const types = Object.fromEntries(dataset.info.columns.map((c) => [c.name, c.type]));
    const button = h("button", { type: "submit" }, "Predict");
    const inputs = design.inputs.map((name, i) => {
      const id = `f-in-${i}`;
      const type = types[name];
      let input;
      if (type === "Binary") {
        input = h("select", { id, name }, h("option", { value: "0" }, "0"), h("option", { value: "1" }, "1"));
      } else if (type === "Label") {
        const column = sample ? sample.header.indexOf(name) : -1;
        const values = column < 0 ? [] : [...new Set(sample.rows.map((r) => r[column]))].slice(0, 200);
        input = h("input", { id, name, list: `${id}-values`, autocomplete: "off", required: true, value: values[0] || "" });
        return h("div", {}, h("label", { htmlFor: id }, `${name} (label)`), input,
          h("datalist", { id: `${id}-values` }, values.map((v) => h("option", { value: v }))));
      } else {
        const first = sample && sample.header.indexOf(name) >= 0 ? sample.rows[0]?.[sample.header.indexOf(name)] : "";
        input = h("input", { id, name, type: "number", step: type === "Int" ? "1" : "any", required: true, value: first || "",
                             inputMode: type === "Int" ? "numeric" : "decimal" });
      }
      return h("div", {}, h("label", { htmlFor: id }, `${name} (${type})`), input);
    });
    const csv = h("form", { onsubmit: (event) => {
      event.preventDefault();
      const row = {};
      for (const name of design.inputs) {
        const el = csv.querySelector(`[name="${CSS.escape(name)}"]`);
        row[name] = types[name] === "Label" ? el.value : Number(el.value);
      }
      predict({ row }, button);
    } }, h("div", { class: "fields" }, inputs), h("p", {}, button));
    return h("div", { class: "card" }, h("h2", {}, "A row"),
      h("p", { class: "muted" }, `Inputs of ${dataset.name}; it predicts ${design.outputs.join(", ")}.`), csv);
  }

  async function load() {
    let model;
    let trained;
    try {
      model = await api("GET", `/models/${key}`);
      trained = model.design ? (await api("GET", `/models/${key}/trained`)).trained : [];
    } catch (e) {
      show(h("p", { class: "error" }, e.status === 404 ? "This model does not exist (any more)." : e.message), h("a", { href: "#/" }, "Your models"));
      return;
    }
    title.textContent = `Test: ${model.name}`;
    if (!trained.length) {
      body.replaceChildren(h("p", {}, "No trained model to test yet: ", h("a", { href: `#/train/${encodeURIComponent(key)}` }, "train it"), " first."));
      return;
    }
    trained.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const wanted = params.get("run");
    runSelect.replaceChildren(...trained.map((t) => h("option", { value: t.run_id, selected: t.run_id === wanted },
      `${t.run_id.slice(0, 12)} · ${when(t.created_at)}${Object.keys(t.metrics || {}).length ? ` · ${Object.entries(t.metrics).slice(0, 2).map(([n, v]) => `${n} ${fmt(v)}`).join(", ")}` : ""}`)));
    let input;
    try {
      input = model.design.spec.format === "images" ? imageForm() : await csvForm(model.design);
    } catch (e) {
      fail(e);
      return;
    }
    body.replaceChildren(h("div", { class: "card" }, h("div", { class: "fields" },
      h("div", {}, h("label", { htmlFor: "f-run" }, "Trained model"), runSelect),
      h("div", {}, h("label", { htmlFor: "f-predict-pool" }, "Pool whose agent predicts"), pool))), input);
  }

  show(title, modelTabs(key, "test"), body, error, result);
  load();
  return null;
}
