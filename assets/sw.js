// vit-lens service worker: keeps the page usable with no network after one visit.
// Same-origin GETs go to the network first and fall back to the last copy; on install the
// app shell (page, wasm, worker, built-in model, samples) is stored, so even the first
// offline reload works. Cross-origin requests (model hubs) are left alone: downloaded
// models live in their own cache, managed by the page.
const CACHE = "vit-lens-app-v1";

async function shellUrls() {
  const urls = new Set([
    "./",
    "./vit-lens-worker_loader.js",
    "./vit-lens-worker.js",
    "./vit-lens-worker_bg.wasm",
    "./assets/model/config.json",
    "./assets/model/preprocessor_config.json",
    "./assets/model/model.safetensors",
    "./assets/samples/index.json",
  ]);
  const page = await (await fetch("./", { cache: "no-store" })).text();
  for (const m of page.matchAll(/["'](\/?[\w\-./]+\.(?:js|wasm|css))["']/g)) urls.add(m[1]);
  try {
    const index = await (await fetch("./assets/samples/index.json")).json();
    for (const s of index.samples) urls.add(`./assets/samples/${s.file}`);
  } catch (_) {
    // Samples are optional.
  }
  return [...urls];
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(await shellUrls());
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok) await cache.put(request, response.clone());
        return response;
      } catch (error) {
        const copy = await cache.match(request, { ignoreSearch: true });
        if (copy) return copy;
        throw error;
      }
    })(),
  );
});
