// The model editor (WebML): a model's network as a spec (docs/http-api.md, "Model specs"). Layers
// are added, edited, removed and reordered; every edit is checked by POST /specs/validate (debounced),
// which gives each layer's output shape and weight count, or the layer and field at fault. The
// model's state (dynamic → shaped → editable → static) decides what may change; shaping picks a
// dataset (and for a CSV table its input and output columns); clone copies it.
import { api } from "./api.js";
import { fmt, form, h, show } from "./ui.js";
import { modelTabs } from "./webml.js";

const VALIDATE_DELAY_MS = 300;
const ACTIVATIONS = ["linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus", "softsign", "gelu",
  "swish", "relu6", "leaky_relu", "hard_sigmoid", "exponential"];
const OPTIMIZERS = ["adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adamw"];
const LOSSES = ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
  "mean_squared_error", "mean_absolute_error", "mean_squared_logarithmic_error", "huber", "kl_divergence", "poisson"];
const METRICS = ["accuracy", "categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy",
  "mean_squared_error", "mean_absolute_error", "auc", "precision", "recall"];
const PADDING = ["valid", "same"];

const activation = (def = "linear") => ({ name: "activation", kind: "choice", options: ACTIVATIONS, def });
const padding = { name: "padding", kind: "choice", options: PADDING, def: "valid" };
const pool = [{ name: "pool_size", kind: "pair", min: 1, max: 16, def: "2", hint: "2, or height, width" },
  { name: "strides", kind: "optpair", min: 1, max: 16, def: "", hint: "empty: the pool size" }, padding];

/** The 12 layer types of fitwire.contract.specs, with their parameters, ranges and defaults. */
export const LAYERS = {
  Conv2D: [{ name: "filters", kind: "int", min: 1, max: 1024, def: "16" },
    { name: "kernel_size", kind: "pair", min: 1, max: 64, def: "3", hint: "3, or height, width" },
    { name: "strides", kind: "pair", min: 1, max: 16, def: "1" }, padding, activation("relu")],
  Conv1D: [{ name: "filters", kind: "int", min: 1, max: 1024, def: "16" },
    { name: "kernel_size", kind: "int", min: 1, max: 64, def: "3" },
    { name: "strides", kind: "int", min: 1, max: 16, def: "1" }, padding, activation("relu")],
  MaxPooling2D: pool,
  AveragePooling2D: pool,
  GlobalAveragePooling2D: [],
  GlobalMaxPooling2D: [],
  Flatten: [],
  BatchNormalization: [{ name: "momentum", kind: "float", min: 0, max: 1, step: "0.01", def: "0.99" },
    { name: "epsilon", kind: "float", min: 0, max: 1, step: "any", def: "0.001" }],
  Dropout: [{ name: "rate", kind: "float", min: 0, max: 0.99, step: "0.05", def: "0.2", hint: "0 to under 1" }],
  Dense: [{ name: "units", kind: "units", min: 1, max: 65536, def: "", hint: "empty: the dataset's output size" },
    activation("relu")],
  Activation: [activation("relu")],
  Rescaling: [{ name: "scale", kind: "float", min: -1e6, max: 1e6, step: "any", def: String(1 / 255) },
    { name: "offset", kind: "float", min: -1e6, max: 1e6, step: "any", def: "0" }],
};

const STARTERS = {
  images: [["Rescaling", {}], ["Conv2D", { filters: 16 }], ["MaxPooling2D", {}], ["Flatten", {}],
    ["Dense", { units: null, activation: "softmax" }]],
  csv: [["Dense", { units: 16, activation: "relu" }], ["Dense", { units: null, activation: "softmax" }]],
};

const STATES = {
  none: "No spec yet: this model is trained from your own script with the Tracker. Design a network below and save it.",
  dynamic: "Dynamic: not shaped to a dataset yet, so its output size is open. Shape it to a dataset to train it.",
  shaped: "Shaped to a dataset: its input size and output units come from the data.",
  editable: "Editable: shaped to a dataset and edited since (or cloned).",
  static: "Static: it has trained models, so its layers and shaping are frozen. Clone it to change them, or delete its trained models on the Train page.",
};

function toText(value) {
  if (value === null || value === undefined) return "";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** An input's text as the spec's JSON value; text that is no number goes as is (the server names it). */
function toValue(field, raw) {
  const text = String(raw ?? "").trim();
  if (field.kind === "choice") return text;
  if (text === "") return field.kind === "units" || field.kind === "optpair" ? null : undefined;
  if (field.kind === "float") return Number.isFinite(Number(text)) ? Number(text) : text;
  if (field.kind === "pair" || field.kind === "optpair") {
    const parts = text.split(/[\s,x×]+/).filter(Boolean);
    if (parts.length && parts.length <= 2 && parts.every((p) => /^\d+$/.test(p))) {
      return parts.length === 1 ? Number(parts[0]) : parts.map(Number);
    }
    return text;
  }
  return /^[+-]?\d+$/.test(text) ? Number(text) : text; // int, units
}

function newLayer(type, params = {}) {
  const values = {};
  for (const f of LAYERS[type]) values[f.name] = f.name in params ? toText(params[f.name]) : f.def;
  return { type, values };
}

const shapeText = (shape) => (shape || []).map((n) => (n === null ? "?" : n)).join(" × ");

/** Where a 400 says the spec is wrong: "layer N (field): …", or pydantic's "Field 'spec.layers.N.Type.layer.field…'". */
export function placeOf(message) {
  let m = message.match(/layer (\d+)(?: \(([^)]+)\))?: (.*)$/);
  if (m) return { index: Number(m[1]), field: m[2], sentence: `Layer ${m[1]}${m[2] ? ` (${m[2]})` : ""}: ${m[3]}` };
  m = message.match(/'(?:spec\.)?layers\.(\d+)(?:\.\w+)?(?:\.layer\.(\w+))?[^']*': (.*)$/);
  if (m) return { index: Number(m[1]), field: m[2], sentence: `Layer ${m[1]}${m[2] ? ` (${m[2]})` : ""}: ${m[3]}` };
  return { index: null, field: null, sentence: message };
}

export function editorPage(app, key) {
  const st = { model: null, design: null, format: "images", size: "28, 28, 3", layers: [], optimizer: "adam",
               learningRate: "", loss: "", metrics: [], dirty: false, seq: 0, timer: null, datasets: null };
  const title = h("h1", {}, "Design");
  const stateBox = h("div", { class: "card", id: "model-state" });
  const layerList = h("ol", { class: "layers", id: "layers" });
  const shapesBody = h("tbody");
  const total = h("p", { class: "muted", id: "params-total" });
  const specError = h("p", { class: "error", id: "spec-error", role: "alert", hidden: true });
  const saveStatus = h("p", { class: "muted", role: "status", id: "save-status" });
  const settings = h("div");
  const shaping = h("div", { class: "card", id: "shaping" });
  const cloning = h("div", { class: "card", id: "cloning" });
  const addType = h("select", { id: "f-add-type", "aria-label": "Layer type" }, Object.keys(LAYERS).map((t) => h("option", { value: t }, t)));
  const saveButton = h("button", { id: "save-spec", onclick: () => save() }, "Save");
  const editing = h("fieldset", { class: "plain", id: "editing" },
    settings,
    h("h2", {}, "Layers"), layerList,
    h("div", { class: "row" }, addType, h("button", { class: "secondary", onclick: () => {
      st.layers.push(newLayer(addType.value));
      drawLayers();
      changed();
    } }, "Add layer")));

  const isStatic = () => st.design?.state === "static";

  // --- loading and state ---
  async function load() {
    let model;
    try {
      model = await api("GET", `/models/${key}`);
    } catch (e) {
      show(h("p", { class: "error" }, e.status === 404 ? "This model does not exist (any more)." : e.message), h("a", { href: "#/" }, "Your models"));
      return;
    }
    adopt(model);
    loadDatasets();
  }

  function adopt(model) {
    st.model = model;
    st.design = model.design;
    title.textContent = `Design: ${model.name}`;
    const spec = model.design?.spec;
    if (spec) {
      st.format = spec.format;
      st.size = toText(spec.size);
      st.layers = spec.layers.map((l) => newLayer(l.type, l.layer || {}));
      st.optimizer = spec.optimizer || "adam";
      st.learningRate = toText(spec.learning_rate);
      st.loss = spec.loss || "";
      st.metrics = [...(spec.metrics || [])];
    } else if (!st.layers.length) {
      st.layers = STARTERS[st.format].map(([t, p]) => newLayer(t, p));
    }
    st.dirty = false;
    drawState();
    drawSettings();
    drawLayers();
    drawCloning();
    editing.disabled = isStatic();
    saveButton.disabled = isStatic();
    validate();
  }

  function drawState() {
    const d = st.design;
    const state = d ? d.state : "none";
    const shaped = d?.dataset_name ? [h("p", {}, "Dataset: ", h("a", { href: `#/datasets/${d.dataset_id}` }, d.dataset_name),
      d.inputs?.length ? ` · inputs ${d.inputs.join(", ")} · outputs ${d.outputs.join(", ")}` : "",
      ` · input size ${shapeText(d.spec.size)} · ${d.output_units} output unit${d.output_units === 1 ? "" : "s"}`)] : [];
    stateBox.replaceChildren(h("div", { class: "row" }, h("b", { class: "grow" }, "State"),
      h("span", { class: `state ${state}`, id: "state-badge" }, d ? state : "no spec")),
    h("p", { id: "state-reason" }, STATES[state]), ...shaped,
    d?.trained?.length ? h("p", { class: "muted" }, `${d.trained.length} trained model${d.trained.length === 1 ? "" : "s"}: `,
      h("a", { href: `#/train/${encodeURIComponent(key)}` }, "see them on the Train page")) : null);
  }

  // --- the spec's settings: format, input size, optimizer, loss, metrics ---
  function select(id, label, options, value, onchange, blank) {
    return [h("label", { htmlFor: id }, label), h("select", { id, onchange: (e) => { onchange(e.target.value); changed(); } },
      blank ? h("option", { value: "", selected: value === "" }, blank) : null,
      options.map((o) => h("option", { value: o, selected: o === value }, o)))];
  }

  function drawSettings() {
    const shapedTo = Boolean(st.design?.dataset_id);
    const size = h("input", { id: "f-size", value: st.size, disabled: shapedTo, inputMode: "numeric",
                              oninput: () => { st.size = size.value; changed(); } });
    const metrics = h("div", { class: "checks", id: "f-metrics" }, METRICS.map((m) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: m, checked: st.metrics.includes(m), onchange: (e) => {
        st.metrics = e.target.checked ? [...st.metrics, m] : st.metrics.filter((x) => x !== m);
        changed();
      } }), m)));
    settings.replaceChildren(
      h("div", { class: "fields" },
        h("div", {}, ...select("f-format", "Data", ["images", "csv"], st.format, (v) => {
          st.format = v;
          if (!st.design) {
            st.layers = STARTERS[v].map(([t, p]) => newLayer(t, p));
            st.size = v === "images" ? "28, 28, 3" : "8";
            drawSettings();
            drawLayers();
          }
          drawShaping();
        })),
        h("div", {}, h("label", { htmlFor: "f-size" }, shapedTo ? "Input size (from the dataset)"
          : st.format === "images" ? "Input size (height, width, channels)" : "Input size (features)"), size),
        h("div", {}, ...select("f-optimizer", "Optimizer", OPTIMIZERS, st.optimizer, (v) => { st.optimizer = v; })),
        h("div", {}, h("label", { htmlFor: "f-lr" }, "Learning rate (empty: the optimizer's)"),
          h("input", { id: "f-lr", type: "number", step: "any", min: "0", max: "10", value: st.learningRate,
                       oninput: (e) => { st.learningRate = e.target.value; changed(); } })),
        h("div", {}, ...select("f-loss", "Loss", LOSSES, st.loss, (v) => { st.loss = v; }, "default for the data"))),
      h("label", {}, "Metrics (none chosen: the default for the data)"), metrics);
    settings.querySelector("#f-format").disabled = shapedTo;
  }

  // --- layers ---
  function fieldInput(layer, index, f) {
    const id = `l${index}-${f.name}`;
    const value = layer.values[f.name];
    const oninput = (e) => { layer.values[f.name] = e.target.value; changed(); };
    const input = f.kind === "choice"
      ? h("select", { id, name: f.name, onchange: oninput }, f.options.map((o) => h("option", { value: o, selected: o === value }, o)))
      : h("input", { id, name: f.name, value, oninput, placeholder: f.kind === "units" ? "dataset's" : "",
                     ...(f.kind === "int" || f.kind === "float" || f.kind === "units"
                       ? { type: "number", min: f.min, max: f.max, step: f.step || "1", inputMode: f.kind === "float" ? "decimal" : "numeric" }
                       : { inputMode: "numeric" }) });
    return h("div", {}, h("label", { htmlFor: id }, f.name, f.hint ? h("span", { class: "hint" }, ` (${f.hint})`) : null), input);
  }

  function drawLayers() {
    layerList.replaceChildren(...st.layers.map((layer, i) => {
      const type = h("select", { id: `l${i}-type`, "aria-label": `Layer ${i} type`, onchange: (e) => {
        st.layers[i] = newLayer(e.target.value);
        drawLayers();
        changed();
      } }, Object.keys(LAYERS).map((t) => h("option", { value: t, selected: t === layer.type }, t)));
      const move = (to) => {
        const [moved] = st.layers.splice(i, 1);
        st.layers.splice(to, 0, moved);
        drawLayers();
        changed();
      };
      return h("li", { class: "layer", "data-index": i },
        h("div", { class: "row" }, h("b", {}, `Layer ${i}`), type,
          h("span", { class: "grow" }),
          h("button", { class: "secondary icon", "aria-label": `Move layer ${i} up`, disabled: i === 0, onclick: () => move(i - 1) }, "↑"),
          h("button", { class: "secondary icon", "aria-label": `Move layer ${i} down`, disabled: i === st.layers.length - 1,
                        onclick: () => move(i + 1) }, "↓"),
          h("button", { class: "secondary icon", "aria-label": `Remove layer ${i}`, disabled: st.layers.length === 1, onclick: () => {
            st.layers.splice(i, 1);
            drawLayers();
            changed();
          } }, "✕")),
        LAYERS[layer.type].length ? h("div", { class: "fields" }, LAYERS[layer.type].map((f) => fieldInput(layer, i, f))) : null,
        h("p", { class: "layer-shape muted" }),
        h("p", { class: "layer-error error", role: "alert", hidden: true }));
    }));
  }

  function specJson() {
    const spec = {
      format: st.format,
      layers: st.layers.map((l) => ({ type: l.type, layer: Object.fromEntries(LAYERS[l.type]
        .map((f) => [f.name, toValue(f, l.values[f.name])]).filter(([, v]) => v !== undefined)) })),
      optimizer: st.optimizer,
      metrics: st.metrics,
    };
    const size = st.size.split(/[\s,x×]+/).filter(Boolean);
    if (size.length) spec.size = size.map((n) => (/^\d+$/.test(n) ? Number(n) : n));
    if (st.learningRate.trim()) spec.learning_rate = Number(st.learningRate);
    if (st.loss) spec.loss = st.loss;
    return spec;
  }

  // --- validation: the live table ---
  function changed() {
    st.dirty = true;
    saveStatus.textContent = "Unsaved changes.";
    clearTimeout(st.timer);
    st.timer = setTimeout(validate, VALIDATE_DELAY_MS);
  }

  function clearErrors() {
    specError.hidden = true;
    for (const el of layerList.querySelectorAll(".layer-error")) el.hidden = true;
    for (const el of layerList.querySelectorAll(".invalid")) el.classList.remove("invalid");
    for (const el of layerList.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  /** Puts a 400's sentence at the layer (and field) it names, else above the table. */
  function placeError(message) {
    const place = placeOf(message.replace(/^The spec cannot be built: /, ""));
    const card = place.index === null ? null : layerList.querySelector(`li[data-index="${place.index}"]`);
    if (!card) {
      specError.textContent = place.sentence;
      specError.hidden = false;
      return place;
    }
    card.classList.add("invalid");
    const line = card.querySelector(".layer-error");
    line.textContent = place.sentence;
    line.hidden = false;
    const input = place.field && card.querySelector(`[name="${place.field}"]`);
    if (input) { input.classList.add("invalid"); input.setAttribute("aria-invalid", "true"); }
    return place;
  }

  function drawShapes(rows, place) {
    shapesBody.replaceChildren(...st.layers.map((layer, i) => {
      const row = rows?.[i];
      const bad = place && place.index === i;
      return h("tr", { class: bad ? "invalid" : "", "data-index": i }, h("td", {}, String(i)), h("td", {}, layer.type),
        h("td", { class: "shape" }, bad ? "error" : row ? shapeText(row.output_shape) : "–"),
        h("td", {}, row && row.params !== null ? fmt(row.params) : row ? "open" : "–"));
    }));
    layerList.querySelectorAll("li.layer").forEach((card, i) => {
      const row = rows?.[i];
      card.querySelector(".layer-shape").textContent = row
        ? `→ ${shapeText(row.output_shape)} · ${row.params === null ? "weights open until shaped" : `${fmt(row.params)} weights`}` : "";
    });
  }

  async function validate() {
    const mine = ++st.seq;
    const spec = specJson();
    clearErrors();
    if (!spec.size) {
      drawShapes(null, null);
      total.textContent = "Set the input size, or shape the model to a dataset, to see every layer's shape.";
      return;
    }
    try {
      const answer = await api("POST", "/specs/validate", { spec, output_units: st.design?.output_units ?? undefined });
      if (mine !== st.seq) return;
      drawShapes(answer.layers, null);
      total.textContent = answer.params === null ? "Weights: open until the model is shaped to a dataset."
        : `Weights in all: ${answer.params.toLocaleString()}`;
    } catch (e) {
      if (mine !== st.seq) return;
      if (e.status !== 400) { specError.textContent = e.message; specError.hidden = false; return; }
      clearErrors();
      const place = placeError(e.message);
      drawShapes(null, place);
      total.textContent = "";
    }
  }

  async function save() {
    clearTimeout(st.timer);
    saveButton.disabled = true;
    try {
      const model = await api("PUT", `/models/${key}/spec`, specJson());
      adopt(model);
      saveStatus.textContent = "Saved.";
      return true;
    } catch (e) {
      clearErrors();
      if (e.status === 400) placeError(e.message);
      else { specError.textContent = e.message; specError.hidden = false; }
      saveStatus.textContent = "Not saved.";
      return false;
    } finally {
      saveButton.disabled = isStatic();
    }
  }

  // --- shaping to a dataset ---
  async function loadDatasets() {
    try {
      st.datasets = (await api("GET", "/datasets")).datasets;
    } catch (e) {
      shaping.replaceChildren(h("h2", {}, "Shape to a dataset"), h("p", { class: "error" }, e.message));
      return;
    }
    drawShaping();
  }

  function drawShaping() {
    if (!st.datasets) return;
    const fitting = st.datasets.filter((d) => d.format === st.format);
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const columns = h("div");
    const current = st.design?.dataset_name;
    const pick = h("select", { id: "f-shape-dataset", onchange: () => drawColumns() },
      fitting.map((d) => h("option", { value: d.name, selected: d.name === current }, `${d.name}${d.public ? " (public)" : ""}`)));
    const button = h("button", { id: "shape", disabled: isStatic() || !fitting.length }, "Shape to this dataset");

    function drawColumns() {
      const dataset = fitting.find((d) => d.name === pick.value);
      if (!dataset || dataset.format !== "csv") {
        columns.replaceChildren(dataset ? h("p", { class: "muted" },
          `Input ${dataset.info.sizes[0]?.[1]}×${dataset.info.sizes[0]?.[0]} (or the size set above), ${dataset.info.classes.length} classes: the last Dense layer's units.`) : "");
        return;
      }
      const same = dataset.name === current;
      const group = (role, chosen) => h("fieldset", { class: "checks", id: `f-${role}` }, h("legend", {}, role === "inputs" ? "Inputs" : "Outputs"),
        dataset.info.columns.map((c) => h("label", { class: `check${c.blocked ? " blocked" : ""}` },
          h("input", { type: "checkbox", name: role, value: c.name, disabled: c.blocked, checked: same && chosen.includes(c.name) }),
          `${c.name} `, h("span", { class: "muted" }, c.blocked ? `(${c.type}, blocked: ${c.unique}${c.unique_capped ? "+" : ""} labels)`
            : `(${c.type}${c.type === "Label" ? `, ${c.one_hot_width} wide` : ""})`))));
      columns.replaceChildren(group("inputs", st.design?.inputs || []), group("outputs", st.design?.outputs || []));
    }

    button.onclick = async () => {
      error.hidden = true;
      button.disabled = true;
      try {
        if (st.dirty || !st.design) {
          if (!await save()) throw new Error("Fix the spec first: it is not saved.");
        }
        const body = { dataset: pick.value };
        const dataset = fitting.find((d) => d.name === pick.value);
        if (dataset?.format === "csv") {
          body.inputs = [...columns.querySelectorAll("input[name=inputs]:checked")].map((i) => i.value);
          body.outputs = [...columns.querySelectorAll("input[name=outputs]:checked")].map((i) => i.value);
        }
        adopt(await api("POST", `/models/${key}/shape`, body));
        saveStatus.textContent = `Shaped to ${body.dataset}.`;
        drawShaping();
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
      } finally {
        button.disabled = isStatic();
      }
    };

    shaping.replaceChildren(...[h("h2", {}, "Shape to a dataset"),
      fitting.length ? [h("label", { htmlFor: "f-shape-dataset" }, `Dataset (${st.format})`), pick, columns, h("p", {}, button), error]
        : h("p", { class: "muted" }, `No ${st.format} dataset yet: `, h("a", { href: "#/datasets" }, "upload one"), "."),
      isStatic() ? h("p", { class: "muted" }, "A static model keeps its shaping.") : []].flat());
    drawColumns();
  }

  function drawCloning() {
    cloning.replaceChildren(...[h("h2", {}, "Clone"), st.design
      ? [h("p", { class: "muted" }, "A new model with the same layers and dataset, editable, without trained models."),
        form([{ name: "clone_name", label: "The clone's name", value: `${st.model.name} (copy)`, required: true }], "Clone",
          async ({ clone_name }) => {
            const model = await api("POST", `/models/${key}/clone`, { name: clone_name.trim() });
            app.go(`#/design/${encodeURIComponent(model.key)}`);
          })]
      : h("p", { class: "muted" }, "Save a spec first.")].flat());
  }

  show(title, modelTabs(key, "design"), stateBox,
    h("div", { class: "card" }, editing),
    h("div", { class: "card" }, h("h2", {}, "Shapes"), specError,
      h("div", { class: "table-wrap" }, h("table", { id: "shapes" },
        h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Layer"), h("th", {}, "Output shape"), h("th", {}, "Weights"))),
        shapesBody)), total),
    h("div", { class: "row save-row" }, saveButton, saveStatus),
    shaping, cloning);
  load();
  return () => clearTimeout(st.timer);
}
