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
 * chunks of `chunk` bytes every `delayMs`, so a download takes visible time. A file may
 * instead be a misbehaving answer: { body, claimLength } sends `body` under a Content-Length
 * of `claimLength` and then breaks the connection; { body, chunked: true } sends it with no
 * Content-Length at all. Files carry an ETag; a request whose If-None-Match matches it gets
 * 304. `hits` lists every request's URL, `conditional` those that were conditional.
 */
export async function serveHub(repos, { chunk = 256 * 1024, delayMs = 60 } = {}) {
  const hits = [];
  const conditional = [];
  const server = http.createServer(async (req, res) => {
    hits.push(req.url);
    const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "content-length" };
    if (req.method === "OPTIONS") {
      res.writeHead(204, { ...cors, "access-control-allow-headers": "*" }).end();
      return;
    }
    const m = /^\/(.+)\/resolve\/([^/]+)\/([^/?]+)$/.exec(new URL(req.url, "http://x").pathname);
    const repo = m && repos[decodeURIComponent(m[1])];
    const file = repo && repo[m[3]];
    if (!file) {
      res.writeHead(404, { ...cors, "content-type": "text/plain" }).end("Entry not found");
      return;
    }
    const odd = !Buffer.isBuffer(file);
    const body = odd ? file.body : file;
    const etag = `"${body.length}-${body.subarray(0, 64).toString("hex").slice(0, 16)}-${body.subarray(-64).toString("hex").slice(-16)}"`;
    const headers = {
      ...cors,
      "access-control-expose-headers": "content-length, etag",
      "content-type": "application/octet-stream",
      etag,
    };
    if (req.headers["if-none-match"] || req.headers["if-modified-since"]) conditional.push(req.url);
    if (!odd && req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers).end();
      return;
    }
    if (odd && file.claimLength) {
      res.writeHead(200, { ...headers, "content-length": file.claimLength });
      res.write(body);
      await new Promise((r) => setTimeout(r, 200));
      res.destroy();
      return;
    }
    if (!odd || !file.chunked) headers["content-length"] = body.length;
    res.writeHead(200, headers);
    for (let i = 0; i < body.length; i += chunk) {
      if (res.destroyed) return;
      res.write(body.subarray(i, i + chunk));
      await new Promise((r) => setTimeout(r, delayMs));
    }
    res.end();
  });
  const sockets = track(server);
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, port, hits, conditional, close: closer(server, sockets) };
}
