// Small DOM helpers: no framework, every page builds its elements with h() and updates them in place.

/** An element: h("button", {class: "danger", onclick}, "Stop"). Text children are text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && name !== "list") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the page's content. */
export function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
  window.scrollTo(0, 0);
}

/** One sentence at the top of the page (`kind` "bad" for trouble); null hides it. */
export function banner(sentence, kind = "") {
  const el = document.getElementById("banner");
  el.hidden = !sentence;
  el.className = kind;
  el.textContent = sentence || "";
}

/** A form whose submit runs `action(values)`; its error line shows the thrown error's one sentence. */
export function form(fields, submitLabel, action) {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { type: "submit" }, submitLabel);
  const inputs = fields.map((f) => h("input", { name: f.name, type: f.type || "text", required: f.required,
    autocomplete: f.autocomplete || "off", value: f.value || "", minLength: f.minLength,
    id: `f-${f.name}`, "aria-label": f.label }));
  const el = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.hidden = true;
      button.disabled = true;
      const values = Object.fromEntries(inputs.map((i) => [i.name, i.value]));
      try {
        await action(values, el);
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    },
  }, fields.map((f, i) => [h("label", { htmlFor: `f-${f.name}` }, f.label), inputs[i]]), h("p", {}, button), error);
  return el;
}

export const statusBadge = (status) => h("span", { class: `status ${status}` }, status);

/** 0.0123 -> "0.0123"; big and small numbers stay short; non-finite as is. */
export function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") value = Number(value);
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
