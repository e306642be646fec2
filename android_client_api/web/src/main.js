// fitwire's web and phone client: the app shell, the session and a hash router.
//
// Stored state comes over HTTP (api.js); live data straight from RabbitMQ over Web STOMP with the
// user's own broker login (live.js). Pages are functions that draw into <main> and return their
// clean-up (unsubscribing their live feeds) for when the user navigates away.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, auth } from "./api.js";
import { Live } from "./live.js";
import { adminPage, jobsPage } from "./admin.js";
import { accountPage, loginPage, modelPage, modelsPage, signupPage } from "./pages.js";
import { runPage } from "./run.js";
import { datasetPage, datasetsPage } from "./datasets.js";
import { editorPage } from "./editor.js";
import { testPage } from "./predict.js";
import { trainPage } from "./train.js";
import { banner, h, show } from "./ui.js";

const live = new Live();
const app = { session: null, live, go, refreshSession };
let cleanup = null;
let expiredSentence = "";

auth.onExpired = (sentence) => {
  expiredSentence = sentence;
  app.session = null;
  live.stop();
  go("#/login");
};

live.on((event) => {
  if (event === "state") drawConnection();
});

function drawConnection() {
  const el = document.getElementById("conn");
  const labels = { off: "", connecting: "connecting…", live: "live", down: "reconnecting…", refused: "refused" };
  el.className = `conn ${live.state}`;
  el.textContent = labels[live.state];
  el.hidden = live.state === "off";
  el.title = live.state === "down" ? "The live connection to the broker dropped; stored data is shown." : "";
  if (live.state === "down") {
    banner(`Can't reach the broker at ${live.url}; retrying every few seconds (stored data is shown).`, "bad");
  } else if (live.state === "refused") {
    // A refused login is usually an expired token: /session says so with a 401 (and signs out).
    api("GET", "/session").then(
      () => banner(`The broker refused your login (${live.detail || "no reason given"}); live updates are off.`, "bad"),
      () => {},
    );
  } else if (live.state === "live") {
    banner(null);
  }
}

function drawNav() {
  const nav = document.getElementById("nav");
  const user = app.session?.user;
  nav.replaceChildren(...(user ? [h("a", { href: "#/" }, "Models"), h("a", { href: "#/datasets" }, "Datasets"), h("a", { href: "#/jobs" }, "Jobs"),
    user.is_admin ? h("a", { href: "#/admin" }, "Admin") : null, h("a", { href: "#/account" }, user.username)].filter(Boolean) : []));
}

async function refreshSession() {
  app.session = await api("GET", "/session");
  drawNav();
  return app.session;
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  if (parts[0] === "signup") return void (cleanup = signupPage(app, params));
  if (!auth.token || parts[0] === "login") {
    drawNav();
    const sentence = expiredSentence;
    expiredSentence = "";
    if (!sentence) banner(null);
    return void (cleanup = loginPage(app, sentence));
  }
  if (!app.session) {
    try {
      await refreshSession();
    } catch (e) {
      if (!auth.token) return; // a 401: onExpired already went to the log-in page
      show(h("h1", {}, "fitwire"), h("p", { class: "error" }, e.message),
        h("button", { onclick: () => route() }, "Try again"));
      return;
    }
    live.start(app.session);
  }
  const pages = {
    "": () => modelsPage(app),
    models: () => modelPage(app, decodeURIComponent(parts[1] || "")),
    runs: () => runPage(app, decodeURIComponent(parts[1] || "")),
    datasets: () => (parts[1] ? datasetPage(app, decodeURIComponent(parts[1])) : datasetsPage(app)),
    design: () => editorPage(app, decodeURIComponent(parts[1] || "")),
    train: () => trainPage(app, decodeURIComponent(parts[1] || "")),
    test: () => testPage(app, decodeURIComponent(parts[1] || ""), params),
    account: () => accountPage(app),
    jobs: () => jobsPage(app),
    admin: () => (app.session.user.is_admin ? adminPage(app) : show(h("p", {}, "Only admins see this page."))),
  };
  const page = pages[parts[0] || ""];
  cleanup = page ? page() : (show(h("p", {}, "No such page."), h("a", { href: "#/" }, "Your models")), null);
}

window.addEventListener("hashchange", route);
// The tests and the curious: fitwire.probe(destination) tries a subscription with this login.
window.fitwire = { app, probe: (destination) => live.probe(destination) };
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
route();
