// fitwire's service worker: the app opens offline (its shell comes from the cache), and the
// page always gets the newest build when the server answers (network first). Nothing under
// /api/ is ever cached: stored state must be fresh, and answers there carry tokens.
const CACHE = "fitwire-__BUILD__";
const SHELL = ["/", "/app/app.js", "/app/app.css", "/manifest.webmanifest", "/app/icon.svg",
               "/app/icon-192.png", "/app/icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        const copy = response.clone();
        if (response.ok) caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        return response;
      })
      .catch(() => caches.match(event.request).then((hit) => hit || Response.error())),
  );
});

// A click on a "training ended" notification brings the app forward.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((all) =>
    all.length ? all[0].focus() : self.clients.openWindow(event.notification.data?.url || "/")));
});
