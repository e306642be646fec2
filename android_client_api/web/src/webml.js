// What the WebML pages share: the tabs of a designed model, uploads with progress, and files and
// images the API serves only with the Authorization header (fetched, then shown or saved).
import { ApiError, auth } from "./api.js";
import { h } from "./ui.js";

/** The tabs over a model's pages: its runs, its design, training, and testing its trained models. */
export function modelTabs(key, active) {
  const k = encodeURIComponent(key);
  const tabs = [["runs", `#/models/${k}`, "Runs"], ["design", `#/design/${k}`, "Design"],
    ["train", `#/train/${k}`, "Train"], ["test", `#/test/${k}`, "Test"]];
  return h("nav", { class: "tabs", "aria-label": "Model pages" }, tabs.map(([name, href, label]) =>
    h("a", { href, class: name === active ? "active" : "", "aria-current": name === active ? "page" : null }, label)));
}

/** "1.2 MB" */
export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

function expired(status, path) {
  if (status === 401 && auth.token && !path.startsWith("/auth/")) {
    auth.token = null;
    auth.onExpired("Your session has expired or was signed out elsewhere; sign in again.");
  }
}

/**
 * POST `file` as the raw body of `/api/v1${path}` with XMLHttpRequest, so the upload's progress is
 * known: `onProgress(sent, total)`. Resolves with the parsed answer; rejects with the server's sentence.
 */
export function uploadFile(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (auth.token) xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* a proxy's HTML page */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      expired(xhr.status, path);
      const message = data?.error?.message || `The server answered ${xhr.status}.`;
      reject(new ApiError(xhr.status, data?.error?.code || "HTTP", message));
    };
    xhr.onerror = () => reject(new ApiError(0, "UNREACHABLE",
      "The upload was cut off: the server refused the file or can't be reached."));
    xhr.send(file);
  });
}

/** GET `/api/v1${path}` with the token, as a Blob; throws the server's sentence. */
export async function fetchBlob(path) {
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { headers: auth.token ? { Authorization: `Bearer ${auth.token}` } : {} });
  } catch {
    throw new ApiError(0, "UNREACHABLE", "Can't reach the fitwire server; check your connection.");
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    expired(response.status, path);
    throw new ApiError(response.status, data?.error?.code || "HTTP", data?.error?.message || `The server answered ${response.status}.`);
  }
  return response.blob();
}

/** A Blob as a data: URL (the page's policy allows data: images, not blob: ones). */
export function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

const images = new Map(); // API path -> Promise of a data: URL (thumbnails never change)
let active = 0;
const waiting = [];

async function limited(task) {
  if (active >= 4) await new Promise((resolve) => waiting.push(resolve));
  active += 1;
  try { return await task(); } finally {
    active -= 1;
    waiting.shift()?.();
  }
}

/** An <img> of an authenticated API image (a thumbnail), loaded in the background, four at a time. */
export function apiImage(path, alt, attrs = {}) {
  const img = h("img", { alt, loading: "lazy", ...attrs });
  if (!images.has(path)) images.set(path, limited(async () => dataUrl(await fetchBlob(path))));
  images.get(path).then((url) => { img.src = url; }, (e) => {
    images.delete(path);
    img.alt = `${alt} (${e.message})`;
    img.classList.add("broken");
  });
  return img;
}

/** Save an authenticated API file under `filename` (the browser's download). */
export async function download(path, filename) {
  const blob = await fetchBlob(path);
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** Inline "Really?" with a confirm and a cancel button, in place of `el`'s content; resolves true to go on. */
export function confirmIn(el, sentence, goLabel) {
  const previous = [...el.childNodes];
  return new Promise((resolve) => {
    const done = (answer) => { el.replaceChildren(...previous); resolve(answer); };
    el.replaceChildren(h("p", {}, sentence), h("div", { class: "row" },
      h("button", { class: "danger", onclick: () => done(true) }, goLabel),
      h("button", { class: "secondary", onclick: () => done(false) }, "Cancel")));
  });
}
