// Datasets (WebML): the list (yours and the public ones), uploads by drag-and-drop or file picker
// with a progress bar, and a dataset's page: a CSV's columns and a paged preview, an images zip's
// classes with a thumbnail each and a page of images per class; download, delete and publish.
import { api } from "./api.js";
import { h, show, when } from "./ui.js";
import { apiImage, bytes, confirmIn, download, uploadFile } from "./webml.js";

const ROWS_PER_PAGE = 20;
const IMAGES_PER_PAGE = 24;

/** "50 rows × 5 columns" or "2 classes · 12 images" */
export function contents(dataset) {
  const info = dataset.info || {};
  if (dataset.format === "csv") return `${info.rows} rows × ${info.columns?.length ?? 0} columns`;
  return `${info.classes?.length ?? 0} classes · ${info.images} images`;
}

/** A file name made into a dataset name: 1–64 of letters, digits, _ . - (starting with a letter or digit). */
function nameOf(file) {
  const base = file.name.replace(/\.(csv|zip|txt)$/i, "").replace(/[^A-Za-z0-9_.-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "");
  return base.slice(0, 64) || "dataset";
}

function progressBar(id, label) {
  const fill = h("div");
  const el = h("div", { class: "progress", id, role: "progressbar", "aria-label": label,
                        "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, fill);
  el.set = (pct) => { fill.style.width = `${pct}%`; el.setAttribute("aria-valuenow", String(Math.round(pct))); };
  return el;
}

export function datasetsPage(app) {
  const list = h("ul", { class: "list", id: "datasets" });
  const listError = h("p", { class: "error", hidden: true });
  let chosen = null;

  const fileInput = h("input", { type: "file", id: "f-dataset", accept: ".csv,.zip,text/csv,application/zip",
                                 class: "file-hidden", "aria-label": "Dataset file", onchange: () => choose(fileInput.files[0]) });
  const chosenLabel = h("span", { class: "muted" }, "Drop a .csv table or a .zip of images here");
  const drop = h("div", { class: "dropzone", id: "dropzone" },
    chosenLabel, h("label", { class: "button secondary", htmlFor: "f-dataset" }, "Choose a file"), fileInput);
  const nameInput = h("input", { id: "f-dataset-name", name: "name", autocomplete: "off", "aria-label": "Dataset name",
                                 pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}" });
  const formatSelect = h("select", { id: "f-dataset-format", "aria-label": "Format" },
    h("option", { value: "" }, "From the content"), h("option", { value: "csv" }, "CSV table"),
    h("option", { value: "images" }, "Images (zip)"));
  const bar = progressBar("upload-progress", "upload progress");
  const barWrap = h("div", { hidden: true }, bar);
  const status = h("p", { class: "muted", id: "upload-status", role: "status" });
  const error = h("p", { class: "error", id: "upload-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", disabled: true }, "Upload");

  function choose(file) {
    if (!file) return;
    chosen = file;
    chosenLabel.textContent = `${file.name} (${bytes(file.size)})`;
    if (!nameInput.dataset.touched) nameInput.value = nameOf(file);
    if (/\.zip$/i.test(file.name)) formatSelect.value = "images";
    else if (/\.csv$/i.test(file.name)) formatSelect.value = "csv";
    button.disabled = false;
    error.hidden = true;
  }

  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files[0]);
  });
  nameInput.addEventListener("input", () => { nameInput.dataset.touched = "1"; });

  const uploadForm = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      if (!chosen) return;
      error.hidden = true;
      button.disabled = true;
      barWrap.hidden = false;
      bar.set(0);
      const started = performance.now();
      const query = new URLSearchParams({ name: nameInput.value.trim() });
      if (formatSelect.value) query.set("format", formatSelect.value);
      try {
        const dataset = await uploadFile(`/datasets?${query}`, chosen, (sent, total) => {
          const pct = total ? (sent / total) * 100 : 0;
          bar.set(pct);
          status.textContent = sent < total ? `Uploading: ${bytes(sent)} of ${bytes(total)} (${Math.round(pct)}%)`
            : "Uploaded; the server is inspecting it…";
        });
        bar.set(100);
        status.textContent = `Uploaded ${dataset.name} in ${((performance.now() - started) / 1000).toFixed(1)} s: ${contents(dataset)}.`;
        status.replaceChildren(status.textContent, " ", h("a", { href: `#/datasets/${dataset.dataset_id}` }, "Inspect it"));
        chosen = null;
        uploadForm.reset();
        delete nameInput.dataset.touched;
        chosenLabel.textContent = "Drop a .csv table or a .zip of images here";
        await load();
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
        status.textContent = "";
        barWrap.hidden = true;
        button.disabled = false;
      }
    },
  }, drop,
  h("label", { htmlFor: "f-dataset-name" }, "Name (letters, digits, _ . -)"), nameInput,
  h("label", { htmlFor: "f-dataset-format" }, "Format"), formatSelect,
  h("p", {}, button), barWrap, status, error);

  async function load() {
    try {
      const { datasets } = await api("GET", "/datasets");
      listError.hidden = true;
      list.replaceChildren(...(datasets.length ? datasets.map(row) : [h("li", { class: "muted" }, "No datasets yet: upload one above.")]));
    } catch (e) {
      listError.textContent = e.message;
      listError.hidden = false;
    }
  }

  function row(d) {
    return h("li", { "data-dataset": d.dataset_id },
      h("div", { class: "row" },
        h("a", { class: "grow", href: `#/datasets/${d.dataset_id}` }, h("b", {}, d.name)),
        h("span", { class: "tag" }, d.format === "csv" ? "CSV" : "images"),
        d.public ? h("span", { class: "tag public" }, "public") : null),
      h("div", { class: "muted" }, `${contents(d)} · ${bytes(d.size)} · ${d.owner === app.session.user.username ? "yours" : d.owner}`));
  }

  show(h("h1", {}, "Datasets"),
    h("div", { class: "card" }, h("h2", {}, "Upload a dataset"),
      h("p", { class: "muted" }, "A CSV table with a header row, or a zip of images in training_data/<class>/ and validation_data/<class>/."),
      uploadForm),
    listError, h("div", { class: "card" }, list));
  load();
  return null;
}

export function datasetPage(app, id) {
  const user = app.session.user;
  const body = h("div");
  const actions = h("div", { class: "row", id: "dataset-actions" });
  const message = h("p", { class: "error", role: "alert", hidden: true });
  let dataset = null;

  function say(sentence, bad = true) {
    message.className = bad ? "error" : "note";
    message.textContent = sentence;
    message.hidden = !sentence;
  }

  async function load() {
    try {
      dataset = await api("GET", `/datasets/${id}`);
    } catch (e) {
      show(h("p", { class: "error" }, e.status === 404 ? "This dataset does not exist (any more), or is not yours to see." : e.message),
        h("a", { href: "#/datasets" }, "Datasets"));
      return;
    }
    draw();
  }

  function drawActions() {
    const mine = dataset.owner === user.username;
    actions.replaceChildren(
      h("button", { class: "secondary", onclick: async () => {
        try { await download(`/datasets/${id}/file`, `${dataset.name}.${dataset.format === "csv" ? "csv" : "zip"}`); } catch (e) { say(e.message); }
      } }, "Download"),
      user.is_admin ? h("button", { class: "secondary", onclick: async () => {
        try {
          dataset = await api("PATCH", `/datasets/${id}`, { public: !dataset.public });
          say(dataset.public ? "Published: every user can see and train on it." : "Private again.", false);
          drawHeader();
          drawActions();
        } catch (e) { say(e.message); }
      } }, dataset.public ? "Make private" : "Publish") : null,
      mine || user.is_admin ? h("button", { class: "danger", onclick: async () => {
        if (!await confirmIn(actions, `Delete ${dataset.name}? This cannot be undone.`, "Delete for good")) return;
        try {
          await api("DELETE", `/datasets/${id}`);
          app.go("#/datasets");
        } catch (e) { say(e.message); }
      } }, "Delete") : null);
  }

  const header = h("div");
  function drawHeader() {
    header.replaceChildren(h("h1", {}, dataset.name),
      h("p", { class: "muted", id: "dataset-meta" }, `${dataset.format === "csv" ? "CSV table" : "Images"} · ${contents(dataset)} · `
        + `${bytes(dataset.size)} · ${dataset.owner}'s${dataset.public ? " · public" : ""} · ${when(dataset.created_at)}`));
  }

  function draw() {
    drawHeader();
    drawActions();
    body.replaceChildren(...(dataset.format === "csv" ? csvParts(dataset) : imageParts(dataset)));
  }

  show(header, actions, message, body, h("p", {}, h("a", { href: "#/datasets" }, "← Datasets")));
  load();
  return null;
}

function csvParts(dataset) {
  const info = dataset.info;
  const columns = h("table", { id: "columns" },
    h("thead", {}, h("tr", {}, ["Column", "Type", "Unique", "One-hot", "Blocked"].map((t) => h("th", {}, t)))),
    h("tbody", {}, info.columns.map((c) => h("tr", { class: c.blocked ? "blocked" : "" },
      h("td", {}, c.name), h("td", {}, c.type), h("td", {}, `${c.unique}${c.unique_capped ? "+" : ""}`),
      h("td", {}, c.type === "Label" ? String(c.one_hot_width) : "–"),
      h("td", {}, c.blocked ? "blocked" : "–")))));
  const preview = h("table", { id: "rows" });
  const where = h("span", { class: "muted grow", id: "rows-range" });
  const error = h("p", { class: "error", hidden: true });
  const prev = h("button", { class: "secondary", onclick: () => page(offset - ROWS_PER_PAGE) }, "Previous");
  const next = h("button", { class: "secondary", onclick: () => page(offset + ROWS_PER_PAGE) }, "Next");
  let offset = 0;

  async function page(at) {
    offset = Math.max(0, at);
    prev.disabled = next.disabled = true;
    try {
      const answer = await api("GET", `/datasets/${dataset.dataset_id}/rows?offset=${offset}&limit=${ROWS_PER_PAGE}`);
      error.hidden = true;
      preview.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, "#"), answer.header.map((t) => h("th", {}, t)))),
        h("tbody", {}, answer.rows.map((r, i) => h("tr", {}, h("td", { class: "muted" }, String(offset + i + 1)),
          r.map((v) => h("td", {}, v))))));
      const last = Math.min(answer.total, offset + answer.rows.length);
      where.textContent = answer.total ? `Rows ${offset + 1}–${last} of ${answer.total}` : "No rows.";
      prev.disabled = offset === 0;
      next.disabled = last >= answer.total;
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      prev.disabled = offset === 0;
      next.disabled = false;
    }
  }
  page(0);
  return [
    h("h2", {}, "Columns"),
    h("p", { class: "muted" }, `${info.rows} rows, delimited by ${info.delimiter === "\t" ? "tabs" : `"${info.delimiter}"`}. `
      + "Label columns are one-hot encoded when used; a blocked one has too many labels to be used."),
    h("div", { class: "card table-wrap" }, columns),
    h("h2", {}, "Rows"),
    h("div", { class: "row pager" }, where, prev, next), error,
    h("div", { class: "card table-wrap" }, preview),
  ];
}

function imageParts(dataset) {
  const info = dataset.info;
  const id = dataset.dataset_id;
  const classView = h("div", { id: "class-images" });
  const sizes = info.sizes.slice(0, 3).map(([w, hgt]) => `${w}×${hgt}`).join(", ") + (info.sizes.length > 3 ? ", …" : "");
  const channels = info.channels.map((c) => ({ 1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA" }[c] || c)).join(", ");

  function openClass(cls, split = "training", offset = 0) {
    const grid = h("div", { class: "thumbs small" });
    const where = h("span", { class: "muted grow" });
    const error = h("p", { class: "error", hidden: true });
    const splitSelect = h("select", { "aria-label": "Split", onchange: () => openClass(cls, splitSelect.value, 0) },
      h("option", { value: "training", selected: split === "training" }, `training (${cls.training})`),
      h("option", { value: "validation", selected: split === "validation" }, `validation (${cls.validation})`));
    const prev = h("button", { class: "secondary", disabled: offset === 0,
                               onclick: () => openClass(cls, split, offset - IMAGES_PER_PAGE) }, "Previous");
    const next = h("button", { class: "secondary", disabled: true,
                               onclick: () => openClass(cls, split, offset + IMAGES_PER_PAGE) }, "Next");
    classView.replaceChildren(h("h2", {}, `Class ${cls.name}`), h("div", { class: "row pager" }, splitSelect, where, prev, next),
      error, grid);
    const query = new URLSearchParams({ class: cls.name, split, offset: String(offset), limit: String(IMAGES_PER_PAGE) });
    api("GET", `/datasets/${id}/images?${query}`).then((answer) => {
      where.textContent = answer.total ? `${offset + 1}–${offset + answer.images.length} of ${answer.total}` : "No images.";
      next.disabled = offset + answer.images.length >= answer.total;
      grid.replaceChildren(...answer.images.map((member) => h("figure", {},
        apiImage(`/datasets/${id}/thumbnail?${new URLSearchParams({ member, size: "96" })}`, member),
        h("figcaption", {}, member.split("/").pop()))));
    }, (e) => { error.textContent = e.message; error.hidden = false; });
    classView.scrollIntoView({ block: "start" });
  }

  const classes = h("div", { class: "thumbs", id: "classes" }, info.classes.map((cls) =>
    h("button", { class: "thumb", "data-class": cls.name, onclick: () => openClass(cls) },
      apiImage(`/datasets/${id}/thumbnail?${new URLSearchParams({ class: cls.name })}`, `a ${cls.name} image`),
      h("b", {}, cls.name), h("span", { class: "muted" }, `${cls.training} training · ${cls.validation} validation`))));
  return [
    h("p", { class: "muted" }, `${info.images} images in ${info.classes.length} classes · sizes ${sizes} · ${channels}. `
      + "Tap a class to see its images."),
    h("h2", {}, "Classes"), classes, classView,
  ];
}

