// Local servers for the browser tests: the built app (dist/) and a mock Hugging Face hub that
// answers {hub}/{repo}/resolve/{revision}/{file}, optionally throttled, with CORS.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".jpg": "image/jpeg",
  ".png": "image/png",
  ".md": "text/markdown",
  ".safetensors": "application/octet-stream",
};

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

function closer(server, sockets) {
  return () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

function track(server) {
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return sockets;
}

/** Serves `root` (the Trunk dist folder) on 127.0.0.1. */
export async function serveStatic(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    if (!fs.existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, {
      "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "content-length": body.length,
      "cache-control": "no-store",
    });
    res.end(body);
  });
  const sockets = track(server);
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, close: closer(server, sockets) };
}

/**
 * A mock hub. `repos` maps "owner/name" to { "file name": Buffer }. Bodies are sent in
 * chunks of `chunk` bytes every `delayMs`, so a download takes visible time.
 */
export async function serveHub(repos, { chunk = 256 * 1024, delayMs = 60 } = {}) {
  const hits = [];
  const server = http.createServer(async (req, res) => {
    hits.push(req.url);
    const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "content-length" };
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...cors, "access-control-allow-headers": "*" }).end();
      return;
    }
    const m = /^\/(.+)\/resolve\/([^/]+)\/([^/?]+)$/.exec(new URL(req.url, "http://x").pathname);
    const repo = m && repos[decodeURIComponent(m[1])];
    const body = repo && repo[m[3]];
    if (!body) {
      res.writeHead(404, { ...cors, "content-type": "text/plain" }).end("Entry not found");
      return;
    }
    res.writeHead(200, {
      ...cors,
      "content-type": "application/octet-stream",
      "content-length": body.length,
    });
    for (let i = 0; i < body.length; i += chunk) {
      if (res.destroyed) return;
      res.write(body.subarray(i, i + chunk));
      await new Promise((r) => setTimeout(r, delayMs));
    }
    res.end();
  });
  const sockets = track(server);
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, hits, close: closer(server, sockets) };
}
