// Sign in, sign up, models, a model's runs, the account. The run page is run.js.
import { api, auth } from "./api.js";
import { banner, form, h, show, statusBadge, when } from "./ui.js";
import { PROGRESS, unpack } from "./wire.js";
import { modelTabs } from "./webml.js";

const snippet = (key) => `model.fit(x, y, callbacks=[Tracker("${key}")])  # from fitwire.callback import Tracker`;

async function signIn(app, username, password) {
  const answer = await api("POST", "/auth/login", { username, password });
  auth.token = answer.token;
  app.session = null; // route() loads the session and connects to the broker
  app.go("#/");
}

export function loginPage(app, sentence) {
  if (sentence) banner(sentence, "bad");
  app.live.stop();
  show(
    h("h1", {}, "Sign in"),
    form([
      { name: "username", label: "Username", required: true, autocomplete: "username" },
      { name: "password", label: "Password", type: "password", required: true, autocomplete: "current-password" },
    ], "Sign in", ({ username, password }) => signIn(app, username.trim(), password)),
    h("p", { class: "muted" }, "No account? Ask an admin for an invitation link."),
  );
  return null;
}

export function signupPage(app, params) {
  const invitation = params.get("invitation") || undefined;
  show(
    h("h1", {}, "Sign up"),
    invitation ? h("p", { class: "muted" }, "You were invited to this fitwire server.") : null,
    form([
      { name: "username", label: "Username (2–32 of letters, digits, _ and -)", required: true, autocomplete: "username" },
      { name: "display_name", label: "Display name (optional)", autocomplete: "name" },
      { name: "password", label: "Password (8 characters or more)", type: "password", required: true,
        minLength: 8, autocomplete: "new-password" },
    ], "Create my account", async ({ username, display_name, password }) => {
      const body = { username: username.trim(), password, invitation };
      if (display_name.trim()) body.display_name = display_name.trim();
      await api("POST", "/auth/signup", body);
      await signIn(app, body.username, password);
    }),
    h("p", {}, h("a", { href: "#/login" }, "I already have an account")),
  );
  return null;
}

export function modelsPage(app) {
  const list = h("ul", { class: "list" });
  const created = h("div");
  const error = h("p", { class: "error", hidden: true });

  async function load() {
    try {
      const { models } = await api("GET", "/models");
      error.hidden = true;
      list.replaceChildren(...(models.length ? models.map(row) : [h("li", { class: "muted" }, "No models yet: create one above.")]));
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  }

  function row(model) {
    const li = h("li", {},
      h("div", { class: "row" },
        h("a", { class: "grow", href: `#/models/${encodeURIComponent(model.key)}` }, h("b", {}, model.name)),
        h("span", { class: "muted" }, `${model.runs} run${model.runs === 1 ? "" : "s"}`)),
      h("div", { class: "mono muted" }, model.key),
      h("div", { class: "row" },
        h("button", { class: "secondary", onclick: () => rename(li, model) }, "Rename"),
        h("button", { class: "secondary", onclick: () => remove(li, model) }, "Delete")));
    return li;
  }

  function rename(li, model) {
    li.replaceChildren(form([{ name: "name", label: `New name for ${model.name}`, value: model.name, required: true }],
      "Save", async ({ name }) => { await api("PATCH", `/models/${model.key}`, { name }); await load(); }),
    h("button", { class: "secondary", onclick: load }, "Cancel"));
  }

  function remove(li, model) {
    li.replaceChildren(h("p", {}, `Delete ${model.name} with all its runs? This cannot be undone.`),
      h("div", { class: "row" },
        h("button", { class: "danger", onclick: async () => {
          try { await api("DELETE", `/models/${model.key}`); } catch (e) { banner(e.message, "bad"); }
          await load();
        } }, "Delete for good"),
        h("button", { class: "secondary", onclick: load }, "Cancel")));
  }

  show(
    h("h1", {}, "Your models"),
    h("div", { class: "card" },
      form([{ name: "name", label: "New model's name", required: true }], "Create model", async ({ name }, el) => {
        const model = await api("POST", "/models", { name });
        el.reset();
        created.replaceChildren(h("div", { class: "card" },
          h("p", { class: "note" }, `Created ${model.name}. Its key:`),
          h("pre", { class: "model-key" }, model.key),
          h("p", { class: "muted" }, "Track a training with one line:"),
          h("pre", { class: "snippet" }, snippet(model.key))));
        await load();
      }),
      created),
    error,
    h("div", { class: "card" }, list),
  );
  load();
  return null;
}

export function modelPage(app, key) {
  const user = app.session.user.username;
  const list = h("ul", { class: "list" });
  const header = h("div", {}, h("h1", {}, "Runs"));
  const rows = new Map(); // run id -> {run, live element}
  let reloadTimer = null;

  async function load() {
    try {
      const [model, { runs }] = await Promise.all([api("GET", `/models/${key}`), api("GET", `/models/${key}/runs`)]);
      header.replaceChildren(h("h1", {}, model.name), modelTabs(model.key, "runs"), h("div", { class: "mono muted" }, model.key),
        h("pre", { class: "snippet" }, snippet(model.key)));
      rows.clear();
      list.replaceChildren(...(runs.length ? runs.map(row) : [h("li", { class: "muted" },
        "No runs yet. Add the Tracker line above to a fit: it appears here live.")]));
    } catch (e) {
      show(h("p", { class: "error" }, e.status === 404 ? "This model does not exist (any more)." : e.message),
        h("a", { href: "#/" }, "Your models"));
    }
  }

  function row(run) {
    const status = h("span", {}, statusBadge(run.status));
    const progress = h("span", { class: "muted" }, run.status === "running" ? "" : when(run.ended_at || run.started_at));
    rows.set(run.run_id, { run, status, progress });
    return h("li", {}, h("div", { class: "row" },
      h("a", { class: "grow", href: `#/runs/${encodeURIComponent(run.run_id)}` }, h("b", {}, run.name)),
      status), progress);
  }

  // New runs and endings change the list: reload it; batches only touch their row. At most one reload per 300 ms, however fast messages of an unknown run come.
  const reloadSoon = () => { reloadTimer ||= setTimeout(() => { reloadTimer = null; load(); }, 300); };
  const unsubscribe = app.live.subscribe(`/exchange/${PROGRESS}/${user}.${key}.*`, (msg) => {
    const entry = rows.get(msg.run_id);
    if (!entry || msg.type === "train_begin" || msg.type === "train_end") return reloadSoon();
    const last = unpack(msg).pop();
    if (last.type === "batch" || last.type === "epoch_end") {
      const epochs = entry.run.epochs ? `/${entry.run.epochs}` : "";
      const pct = last.type === "batch" && last.progress != null ? ` · ${Math.round(last.progress * 100)}%` : "";
      entry.progress.textContent = `epoch ${last.epoch + 1}${epochs}${pct}`;
    }
  });
  const offReconnect = app.live.on((event) => { if (event === "reconnected") load(); });
  show(header, h("div", { class: "card" }, list), h("p", {}, h("a", { href: "#/" }, "← Your models")));
  load();
  return () => { unsubscribe(); offReconnect(); clearTimeout(reloadTimer); };
}

export function accountPage(app) {
  const user = app.session.user;
  const invite = h("div");
  show(
    h("h1", {}, "Account"),
    h("p", {}, `Signed in as ${user.username}${user.is_admin ? " (admin)" : ""}.`),
    h("div", { class: "card" }, h("h2", {}, "Display name"),
      form([{ name: "display_name", label: "Display name", value: user.display_name || "", required: true }], "Save",
        async ({ display_name }, el) => {
          app.session.user = await api("PATCH", "/me", { display_name });
          el.append(h("p", { class: "note" }, "Saved."));
        })),
    h("div", { class: "card" }, h("h2", {}, "Password"),
      form([
        { name: "old_password", label: "Current password", type: "password", required: true, autocomplete: "current-password" },
        { name: "new_password", label: "New password (8 characters or more)", type: "password", required: true,
          minLength: 8, autocomplete: "new-password" },
      ], "Change password", async (values, el) => {
        await api("POST", "/me/password", values);
        el.reset();
        el.append(h("p", { class: "note" }, "Password changed; your other sessions are signed out."));
      })),
    user.is_admin ? h("div", { class: "card" }, h("h2", {}, "Invite someone"),
      h("button", { onclick: async () => {
        try {
          const { token, expires_at } = await api("POST", "/invitations");
          const link = `${location.origin}/#/signup?invitation=${encodeURIComponent(token)}`;
          invite.replaceChildren(h("p", {}, `A one-time sign-up link, valid until ${when(expires_at)}:`),
            h("pre", { class: "invite-link" }, link));
        } catch (e) { invite.replaceChildren(h("p", { class: "error" }, e.message)); }
      } }, "Create an invitation link"), invite) : null,
    h("p", {}, h("button", { class: "secondary", onclick: async () => {
      try { await api("POST", "/auth/logout"); } catch { /* signed out either way */ }
      auth.token = null;
      app.session = null;
      app.go("#/login");
    } }, "Sign out")),
  );
  return null;
}

