// End-to-end tests of the web app in real headless Chromium (playwright-core, the system's
// /usr/bin/chromium; no browser is downloaded). Run after `trunk build`:
//   node tests/e2e/run.mjs [--dist dist] [--shots target/e2e-screenshots] [--only NAME] [--soak]
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import zlib from "node:zlib";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";
import { serveStatic, serveHub } from "./server.mjs";
import { registerExplainTests } from "./explain.mjs";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const DIST = path.resolve(ROOT, opt("--dist", "dist"));
const SHOTS = path.resolve(ROOT, opt("--shots", "target/e2e-screenshots"));
const ONLY = opt("--only", null);
// The soak test (200 images, 20 model switches) runs only when asked for.
const SOAK = args.includes("--soak");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = 180_000;
fs.mkdirSync(SHOTS, { recursive: true });

const FIXTURES = path.join(ROOT, "tests", "fixtures");
const SAMPLES = path.join(ROOT, "assets", "samples");

function modelFiles(dir) {
  const files = {};
  for (const f of ["config.json", "model.safetensors", "preprocessor_config.json"]) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) files[f] = fs.readFileSync(p);
  }
  return files;
}

/** The mock hub's repositories. */
function hubRepos() {
  const good = modelFiles(path.join(FIXTURES, "models", "vit_hf_224"));
  const timm = modelFiles(path.join(FIXTURES, "models", "tiny_vit_timm"));
  const broken = { ...good, "model.safetensors": Buffer.from(good["model.safetensors"].subarray(0, 4096)) };
  const notVit = {
    "config.json": Buffer.from(JSON.stringify({ model_type: "bert", architectures: ["BertModel"], hidden_size: 8 })),
    "model.safetensors": good["model.safetensors"],
  };
  return { "test/vit-224": good, "test/tiny-timm": timm, "test/broken": broken, "test/not-a-vit": notVit };
}

async function launch(webgpu, extraFlags = []) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "vit-lens-chromium-"));
  const flags = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
  ];
  flags.push(...extraFlags);
  if (webgpu) flags.push("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader");
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: flags,
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
  });
  return { context, close: async () => { await context.close(); fs.rmSync(userDir, { recursive: true, force: true }); } };
}

/** Records every request of a page; `allowed` are the origins it may talk to. */
function recordRequests(page, log) {
  page.on("request", (req) => log.push(req.url()));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`    [console] ${msg.text()}`);
  });
  page.on("pageerror", (err) => console.log(`    [pageerror] ${err.message}`));
}

function assertOrigins(log, allowed) {
  for (const url of log) {
    if (url.startsWith("data:") || url.startsWith("blob:")) continue;
    const origin = new URL(url).origin;
    assert.ok(allowed.includes(origin), `request to ${url} leaves the allowed origins ${allowed.join(", ")}`);
  }
}

async function dropFile(page, file, name, type) {
  const bytes = fs.readFileSync(file).toString("base64");
  const dt = await page.evaluateHandle(
    ({ bytes, name, type }) => {
      const raw = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([raw], name, { type }));
      return dt;
    },
    { bytes, name, type },
  );
  await page.dispatchEvent('[data-testid="drop-zone"]', "drop", { dataTransfer: dt });
  await dt.dispose();
}

async function dropBytes(page, buffer, name, type) {
  const tmp = path.join(os.tmpdir(), `vit-lens-${process.pid}-${name}`);
  fs.writeFileSync(tmp, buffer);
  try {
    await dropFile(page, tmp, name, type);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** A PNG whose header claims `w`×`h` pixels (the pixel data is a stub). */
function hugePng(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.alloc(64))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function pasteFile(page, file, name, type) {
  const bytes = fs.readFileSync(file).toString("base64");
  await page.evaluate(
    ({ bytes, name, type }) => {
      const raw = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([raw], name, { type }));
      window.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    },
    { bytes, name, type },
  );
}

async function predictions(page) {
  return page.$$eval('[data-testid="prediction"]', (rows) =>
    rows.map((r) => ({ index: +r.dataset.index, label: r.dataset.label, prob: +r.dataset.prob })),
  );
}

async function heatmapStats(page) {
  return page.$eval('[data-testid="heatmap"]', (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let sum = 0, sq = 0, hash = 0;
    for (let i = 0; i < d.length; i += 4) {
      const v = d[i] + d[i + 1] + d[i + 2];
      sum += v; sq += v * v;
      hash = (hash * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) >>> 0;
    }
    const n = d.length / 4;
    return { std: Math.sqrt(sq / n - (sum / n) ** 2), hash, width: c.width, height: c.height };
  });
}

async function backendText(page) {
  return (await page.textContent('[data-testid="backend"]')) ?? "";
}

async function waitReady(page) {
  await page.waitForFunction(
    () => {
      const b = document.querySelector('[data-testid="backend"]');
      return b && !b.textContent.includes("starting") && !document.querySelector('[data-testid="model-status"]');
    },
    null,
    { timeout: TIMEOUT },
  );
}

async function waitResult(page, previous) {
  await page.waitForFunction(
    (prev) => {
      const rows = document.querySelectorAll('[data-testid="prediction"]');
      if (rows.length === 0) return false;
      const t = document.querySelector('[data-testid="timings"]');
      const stamp = t && t.dataset.totalMs;
      return stamp && stamp !== prev;
    },
    previous ?? null,
    { timeout: TIMEOUT },
  );
  return page.$eval('[data-testid="timings"]', (t) => t.dataset.totalMs);
}

const results = {};
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("webgpu: default model, drop a sample, heatmap follows the layer slider", async () => {
  const b = await launch(true);
  const app = await serveStatic(DIST);
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(app.url + "/");
    await waitReady(page);
    assert.match(await backendText(page), /WebGPU/, "the backend label names WebGPU");
    await page.screenshot({ path: path.join(SHOTS, "01-ready-webgpu.png") });
    await dropFile(page, path.join(SAMPLES, "star.jpg"), "star.jpg", "image/jpeg");
    const stamp = await waitResult(page);
    const preds = await predictions(page);
    assert.equal(preds.length, Math.min(5, preds.length));
    assert.ok(preds.length >= 1);
    assert.match(await backendText(page), /WebGPU/);
    const total = await page.$eval('[data-testid="timings"]', (t) => ({ total: +t.dataset.totalMs, forward: +t.dataset.forwardMs }));
    results.webgpu = { preds, ...total };
    console.log(`    WebGPU: top-1 ${preds[0].label} ${preds[0].prob.toFixed(4)}; drop→heatmap ${total.total} ms (forward ${total.forward} ms)`);
    const last = await heatmapStats(page);
    assert.ok(last.std > 5, `heatmap is not blank (pixel std ${last.std})`);
    await page.screenshot({ path: path.join(SHOTS, "02-result-webgpu.png") });
    await page.locator('[data-testid="layer-slider"]').fill("1");
    await page.waitForFunction((h) => {
      const c = document.querySelector('[data-testid="heatmap"]');
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let hash = 0;
      for (let i = 0; i < d.length; i += 4) hash = (hash * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) >>> 0;
      return hash !== h;
    }, last.hash, { timeout: 10_000 });
    const first = await heatmapStats(page);
    assert.notEqual(first.hash, last.hash, "the heatmap changes with the layer");
    await page.screenshot({ path: path.join(SHOTS, "03-layer-1.png") });
    // ← / → step the layer without re-inference.
    await page.keyboard.press("ArrowRight");
    const afterKey = await page.$eval('[data-testid="layer-slider"]', (s) => s.value);
    assert.equal(afterKey, "2");
    // Raw CLS attention of one head.
    await page.click('[data-testid="mode-attention"]');
    await page.selectOption('[data-testid="head-select"]', "0");
    await page.locator('[data-testid="opacity"]').fill("0.8");
    await page.selectOption('[data-testid="colormap"]', "inferno");
    await page.screenshot({ path: path.join(SHOTS, "04-cls-attention.png") });
    // Switch to the CPU: the same image runs again and must agree.
    await page.selectOption('[data-testid="backend-select"]', "cpu");
    await waitResult(page, stamp);
    await page.waitForFunction(() => document.querySelector('[data-testid="backend"]').textContent.includes("CPU"), null, { timeout: TIMEOUT });
    const cpu = await predictions(page);
    assert.equal(cpu[0].label, preds[0].label, "same top-1 on CPU and WebGPU");
    for (let i = 0; i < Math.min(cpu.length, preds.length); i++) {
      assert.equal(cpu[i].index, preds[i].index);
      assert.ok(Math.abs(cpu[i].prob - preds[i].prob) < 1e-3, `prob ${i}: ${cpu[i].prob} vs ${preds[i].prob}`);
    }
    assertOrigins(log, [app.url]);
  } finally {
    await b.close();
    await app.close();
  }
});

test("no webgpu: the CPU backend runs and agrees with WebGPU", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(app.url + "/");
    await waitReady(page);
    assert.match(await backendText(page), /CPU/, "no adapter: the label says CPU");
    await dropFile(page, path.join(SAMPLES, "star.jpg"), "star.jpg", "image/jpeg");
    await waitResult(page);
    const preds = await predictions(page);
    const total = await page.$eval('[data-testid="timings"]', (t) => ({ total: +t.dataset.totalMs, forward: +t.dataset.forwardMs }));
    results.cpu = { preds, ...total };
    console.log(`    CPU: top-1 ${preds[0].label} ${preds[0].prob.toFixed(4)}; drop→heatmap ${total.total} ms (forward ${total.forward} ms)`);
    assert.match(await backendText(page), /CPU/);
    assert.ok((await heatmapStats(page)).std > 5);
    if (results.webgpu) {
      const g = results.webgpu.preds;
      assert.equal(preds[0].label, g[0].label);
      for (let i = 0; i < Math.min(g.length, preds.length); i++) {
        assert.ok(Math.abs(preds[i].prob - g[i].prob) < 1e-3, `prob ${i}: ${preds[i].prob} vs ${g[i].prob}`);
      }
    }
    await page.screenshot({ path: path.join(SHOTS, "05-result-cpu.png") });
    assertOrigins(log, [app.url]);
    // Offline: with the server gone, the service worker still serves the page, the built-in
    // model and the samples.
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    await app.close();
    await page.reload();
    await waitReady(page);
    await page.click('[data-testid="sample"][data-file="circle.jpg"]');
    await page.waitForFunction(() => (document.querySelector(".caption")?.textContent ?? "").includes("circle"), null, { timeout: TIMEOUT });
    assert.equal(await page.$('[data-testid="error"]'), null, "no error offline");
    await page.screenshot({ path: path.join(SHOTS, "09-offline.png") });
  } finally {
    await b.close();
    await app.close();
  }
});

test("hub: a download with progress, then the same model from the cache with the hub down", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  let hub = await serveHub(hubRepos(), { chunk: 128 * 1024, delayMs: 80 });
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}`);
    await waitReady(page);
    await dropFile(page, path.join(SAMPLES, "circle.jpg"), "circle.jpg", "image/jpeg");
    const stamp = await waitResult(page);
    await page.selectOption('[data-testid="model-select"]', "custom");
    await page.fill('[data-testid="model-url"]', "test/vit-224");
    await page.click('[data-testid="model-load"]');
    await page.waitForSelector('[data-testid="download-progress"]', { timeout: 30_000 });
    const seen = new Set();
    for (let i = 0; i < 60 && (seen.size < 3 || i < 2); i++) {
      const v = await page.$eval('[data-testid="download-progress"]', (p) => p.dataset.loaded).catch(() => null);
      if (v !== null) seen.add(v);
      if (i === 1) await page.screenshot({ path: path.join(SHOTS, "06-download-progress.png") });
      await page.waitForTimeout(100);
    }
    assert.ok(seen.size >= 3, `the progress bar moves (values seen: ${[...seen].join(", ")})`);
    await waitResult(page, stamp);
    const line = await page.textContent(".model-line");
    assert.match(line, /test\/vit-224/);
    const hits = hub.hits.length;
    assert.ok(hits >= 2);
    await hub.close();
    // Same profile, hub stopped: the model comes from the Cache API.
    await page.reload();
    await waitReady(page);
    await page.selectOption('[data-testid="model-select"]', "custom");
    await page.fill('[data-testid="model-url"]', "test/vit-224");
    await page.click('[data-testid="model-load"]');
    await page.waitForFunction(() => (document.querySelector(".model-line")?.textContent ?? "").includes("test/vit-224"), null, { timeout: TIMEOUT });
    assert.equal(await page.$('[data-testid="error"]'), null, "no error with the hub down");
    // Clearing the cache makes the next load need the network, which is down.
    await page.click('[data-testid="clear-cache"]');
    await page.waitForSelector('[data-testid="notice"]');
    await page.selectOption('[data-testid="model-select"]', "custom");
    await page.fill('[data-testid="model-url"]', "test/tiny-timm");
    await page.click('[data-testid="model-load"]');
    await page.waitForSelector('[data-testid="error"]', { timeout: 30_000 });
    assert.match(await page.textContent('[data-testid="error"]'), /network|CORS/i);
    assertOrigins(log, [app.url, hub.url]);
  } finally {
    await b.close();
    await app.close();
    await hub.close().catch(() => {});
  }
});

test("errors: corrupt image, non-image, broken checkpoint and a missing repo keep the result", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  const hub = await serveHub(hubRepos(), { chunk: 1 << 20, delayMs: 0 });
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}`);
    await waitReady(page);
    await dropFile(page, path.join(SAMPLES, "square.jpg"), "square.jpg", "image/jpeg");
    await waitResult(page);
    const before = await predictions(page);
    const heat = await heatmapStats(page);
    const expectKept = async () => {
      assert.deepEqual(await predictions(page), before, "the earlier result stays");
      assert.equal((await heatmapStats(page)).hash, heat.hash);
    };
    const jpeg = fs.readFileSync(path.join(SAMPLES, "square.jpg"));
    await dropBytes(page, Buffer.concat([jpeg.subarray(0, 600), Buffer.alloc(400, 0x55)]), "corrupt.jpg", "image/jpeg");
    await page.waitForSelector('[data-testid="error"]', { timeout: 30_000 });
    const corrupt = await page.textContent('[data-testid="error"]');
    console.log(`    corrupt image → ${corrupt.trim().slice(0, 120)}`);
    await expectKept();
    await page.screenshot({ path: path.join(SHOTS, "07-error-corrupt-image.png") });
    await page.click('[data-testid="error"] button');

    await dropBytes(page, Buffer.from("hello, this is not an image\n"), "notes.txt", "text/plain");
    await page.waitForSelector('[data-testid="error"]', { timeout: 30_000 });
    console.log(`    text file → ${(await page.textContent('[data-testid="error"]')).trim().slice(0, 120)}`);
    await expectKept();
    await page.click('[data-testid="error"] button');

    await dropBytes(page, hugePng(30000, 30000), "huge.png", "image/png");
    await page.waitForSelector('[data-testid="error"]', { timeout: 30_000 });
    const huge = await page.textContent('[data-testid="error"]');
    console.log(`    30000×30000 PNG → ${huge.trim().slice(0, 140)}`);
    assert.match(huge, /30000/);
    await expectKept();
    await page.click('[data-testid="error"] button');

    for (const [repo, pattern] of [["test/broken", /not a usable ViT checkpoint/], ["test/not-a-vit", /not a usable ViT checkpoint/], ["test/missing", /404/]]) {
      await page.selectOption('[data-testid="model-select"]', "custom");
      await page.fill('[data-testid="model-url"]', repo);
      await page.click('[data-testid="model-load"]');
      await page.waitForSelector('[data-testid="error"]', { timeout: 60_000 });
      const msg = await page.textContent('[data-testid="error"]');
      console.log(`    ${repo} → ${msg.trim().slice(0, 140)}`);
      assert.match(msg, pattern);
      await expectKept();
      if (repo === "test/broken") await page.screenshot({ path: path.join(SHOTS, "08-error-broken-checkpoint.png") });
      await page.click('[data-testid="error"] button');
    }
    // The page still works: another image classifies with the model that was loaded.
    await dropFile(page, path.join(SAMPLES, "ring.jpg"), "ring.jpg", "image/jpeg");
    await page.waitForFunction(() => (document.querySelector(".caption")?.textContent ?? "").includes("ring"), null, { timeout: TIMEOUT });
    assertOrigins(log, [app.url, hub.url]);
  } finally {
    await b.close();
    await app.close();
    await hub.close();
  }
});

test("inputs: paste, the file picker, local checkpoint files, and a cancelled download", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  const hub = await serveHub(hubRepos(), { chunk: 64 * 1024, delayMs: 200 });
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}`);
    await waitReady(page);
    await pasteFile(page, path.join(SAMPLES, "triangle.jpg"), "triangle.jpg", "image/jpeg");
    let stamp = await waitResult(page);
    assert.match(await page.textContent(".caption"), /pasted image/);
    await page.setInputFiles('[data-testid="file-input"]', path.join(SAMPLES, "cross.jpg"));
    stamp = await waitResult(page, stamp);
    assert.match(await page.textContent(".caption"), /cross\.jpg/);
    const before = await predictions(page);

    // A local checkpoint: config.json + model.safetensors picked together.
    const dir = path.join(FIXTURES, "models", "tiny_vit_timm");
    await page.setInputFiles('[data-testid="model-file-input"]', [path.join(dir, "config.json"), path.join(dir, "model.safetensors")]);
    await page.waitForFunction(() => (document.querySelector(".model-line")?.textContent ?? "").includes("local files"), null, { timeout: TIMEOUT });
    stamp = await waitResult(page, stamp);
    const local = await predictions(page);
    assert.notDeepEqual(local, before, "the image ran again on the local model");

    // Only a weights file: a clear message, nothing changes.
    await page.setInputFiles('[data-testid="model-file-input"]', [path.join(dir, "model.safetensors")]);
    await page.waitForSelector('[data-testid="error"]');
    assert.match(await page.textContent('[data-testid="error"]'), /config\.json/);
    await page.click('[data-testid="error"] button');

    // A slow download, cancelled: the loaded model stays.
    await page.selectOption('[data-testid="model-select"]', "custom");
    await page.fill('[data-testid="model-url"]', "test/vit-224");
    await page.click('[data-testid="model-load"]');
    await page.waitForSelector('[data-testid="download-progress"]');
    await page.click('[data-testid="download-cancel"]');
    await page.waitForSelector('[data-testid="notice"]');
    assert.match(await page.textContent('[data-testid="notice"]'), /cancelled/);
    assert.equal(await page.$('[data-testid="download-progress"]'), null);
    assert.match(await page.textContent(".model-line"), /local files/);
    assert.deepEqual(await predictions(page), local);
    assertOrigins(log, [app.url, hub.url]);
  } finally {
    await b.close();
    await app.close();
    await hub.close();
  }
});


/** A safetensors file taken apart: its header and its data. */
function readSafetensors(buf) {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString()), data: Buffer.from(buf.subarray(8 + n)) };
}

/** A safetensors file: 8-byte little-endian header length, the JSON header, the data. */
function writeSafetensors(header, data) {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), data]);
}

/** Checkpoints that must be refused, made from the tiny transformers fixture. */
function hostileRepos() {
  const base = modelFiles(path.join(FIXTURES, "models", "tiny_vit_hf"));
  const config = JSON.parse(base["config.json"]);
  const withConfig = (edit) => ({ ...base, "config.json": Buffer.from(JSON.stringify({ ...config, ...edit })) });
  const st = readSafetensors(base["model.safetensors"]);
  const nanData = Buffer.from(st.data);
  const [from, to] = st.header["vit.embeddings.patch_embeddings.projection.weight"].data_offsets;
  for (let i = from; i < to; i += 4) nanData.writeUInt32LE(0x7fc00000, i);
  const hugeHead = structuredClone(st.header);
  hugeHead["classifier.weight"].shape = [1 << 30, config.hidden_size];
  const pre = JSON.parse(base["preprocessor_config.json"]);
  const weights = base["model.safetensors"];
  return {
    "test/tiny": base,
    "test/patch0": withConfig({ patch_size: 0 }),
    "test/nan": { ...base, "model.safetensors": writeSafetensors(st.header, nanData) },
    "test/huge-pre": { ...base, "preprocessor_config.json": Buffer.from(JSON.stringify({ ...pre, size: { height: 16384, width: 16384 } })) },
    "test/huge-classifier": { ...base, "model.safetensors": writeSafetensors(hugeHead, st.data) },
    "test/huge-image": withConfig({ image_size: 2147483647 }),
    "test/oversize": { ...base, "model.safetensors": { body: weights.subarray(0, 1024), claimLength: 2 ** 31 } },
    "test/big-json": { ...base, "config.json": { body: Buffer.alloc(2 << 20, 0x20), chunked: true } },
    "test/truncated": { ...base, "model.safetensors": { body: weights.subarray(0, weights.length >> 1), claimLength: weights.length } },
  };
}

test("hostile: crafted checkpoints, oversize and broken downloads, bad references; the result and model stay", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  const hub = await serveHub(hostileRepos(), { chunk: 1 << 20, delayMs: 0 });
  const otherHost = `http://localhost:${hub.port}`;
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}`);
    await waitReady(page);
    await dropFile(page, path.join(SAMPLES, "square.jpg"), "square.jpg", "image/jpeg");
    await waitResult(page);
    const before = await predictions(page);
    const heat = await heatmapStats(page);
    const modelLine = await page.textContent(".model-line");
    const expectKept = async (what) => {
      assert.deepEqual(await predictions(page), before, `${what}: the earlier result stays`);
      assert.equal((await heatmapStats(page)).hash, heat.hash, `${what}: the heatmap stays`);
    };
    const expectError = async (what, pattern) => {
      await page.waitForSelector('[data-testid="error"]', { timeout: 60_000 });
      await page.waitForFunction(() => !document.querySelector('[data-testid="download-progress"]') && !document.querySelector('[data-testid="model-status"]'), null, { timeout: TIMEOUT });
      const msg = (await page.textContent('[data-testid="error"]')).trim();
      console.log(`    ${what} → ${msg.slice(0, 170)}`);
      assert.match(msg, pattern, what);
      await expectKept(what);
      assert.equal(await page.textContent(".model-line"), modelLine, `${what}: the model stays`);
      await page.click('[data-testid="error"] button');
      return msg;
    };
    const typeModel = async (ref) => {
      await page.selectOption('[data-testid="model-select"]', "custom");
      await page.fill('[data-testid="model-url"]', ref);
      await page.click('[data-testid="model-load"]');
    };
    const cases = [
      ["test/patch0", /patch_size|crashed/i],
      ["test/nan", /NaN|finite|crashed/i],
      ["test/huge-pre", /16384|crashed/i],
      ["test/huge-classifier", /not a usable ViT checkpoint|crashed/i],
      ["test/oversize", /2147\.5 MB, more than the 1073\.7 MB/],
      ["test/big-json", /over 1\.0 MB/],
      ["test/truncated", /broke off/],
      ["test/vit@../../etc", /revision/],
    ];
    for (const [ref, pattern] of cases) {
      await typeModel(ref);
      await expectError(ref, pattern);
    }
    assert.ok(!hub.hits.some((h) => h.includes("..") || h.includes("etc")), "a revision with .. sends no request");
    // A checkpoint whose image_size made the worker panic: the page starts a new worker with
    // the model it had, keeps the result, and goes on working.
    await typeModel("test/huge-image");
    const crash = await expectError("test/huge-image", /image_size|2147483647|crashed|stopped/i);
    console.log(`    (the worker ${/crashed|stopped/.test(crash) ? "crashed and was restarted" : "refused it"})`);
    await waitReady(page);
    // The worker dies as a wasm trap or an out-of-memory abort kills it (an uncaught error in
    // the worker): the page starts a new one with the model it had and keeps the result.
    const dying = page.workers().at(-1);
    await dying.evaluate(() => {
      setTimeout(() => {
        throw new WebAssembly.RuntimeError("unreachable");
      }, 0);
    });
    const died = await expectError("a dead worker", /stopped.*restarted with the built-in model; the previous result stays/);
    await waitReady(page);
    assert.equal(page.workers().length, 1, "one worker runs after the restart");
    assert.match(died, /unreachable/);
    // A model on another host waits for a click, and "Don't download" sends nothing there.
    const hitsBefore = hub.hits.length;
    await typeModel(`${otherHost}/test/tiny/resolve/main/config.json`);
    await page.waitForSelector('[data-testid="host-confirm"]');
    assert.equal(await page.$eval('[data-testid="host-confirm"]', (e) => e.dataset.host), otherHost);
    assert.match(await page.textContent('[data-testid="host-confirm-yes"]'), new RegExp(`Download from ${otherHost}`));
    await page.waitForTimeout(300);
    assert.equal(hub.hits.length, hitsBefore, "nothing is downloaded before the click");
    await page.click('[data-testid="host-confirm-no"]');
    await page.waitForSelector('[data-testid="host-confirm"]', { state: "detached" });
    await expectKept("declined host");
    // The page still works: another image classifies with the model that was loaded.
    await dropFile(page, path.join(SAMPLES, "ring.jpg"), "ring.jpg", "image/jpeg");
    await page.waitForFunction(() => (document.querySelector(".caption")?.textContent ?? "").includes("ring"), null, { timeout: TIMEOUT });
    assert.equal(await page.textContent(".model-line"), modelLine);
    assertOrigins(log, [app.url, hub.url]);
  } finally {
    await b.close();
    await app.close();
    await hub.close();
  }
});

test("links: ?model= on another host waits for a click; ?hub=//evil is refused", async () => {
  const b = await launch(false);
  const app = await serveStatic(DIST);
  const hub = await serveHub(hostileRepos(), { chunk: 1 << 20, delayMs: 0 });
  const otherHost = `http://localhost:${hub.port}`;
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}&model=${encodeURIComponent(`${otherHost}/test/tiny/resolve/main/config.json`)}`);
    await page.waitForSelector('[data-testid="host-confirm"]', { timeout: 30_000 });
    await page.waitForTimeout(500);
    assert.equal(hub.hits.length, 0, "nothing is downloaded from the other host before the click");
    assert.ok(!log.some((u) => u.includes("assets/model/model.safetensors")), "with ?model= the built-in model is not downloaded");
    await page.screenshot({ path: path.join(SHOTS, "17-host-confirm.png") });
    await page.click('[data-testid="host-confirm-yes"]');
    await page.waitForSelector('[data-testid="host-confirm"]', { state: "detached" });
    await page.waitForFunction(() => (document.querySelector(".model-line")?.textContent ?? "").includes("test/tiny"), null, { timeout: TIMEOUT });
    assert.ok(hub.hits.some((h) => h.includes("test/tiny")));
    assert.ok(!log.some((u) => u.includes("assets/model/model.safetensors")), "the built-in model is still not downloaded");
    await dropFile(page, path.join(SAMPLES, "star.jpg"), "star.jpg", "image/jpeg");
    await waitResult(page);
    assert.equal((await predictions(page))[0].label.startsWith("class_"), true);
    assertOrigins(log, [app.url, hub.url, otherHost]);

    // ?model= on the configured hub loads at once, the built-in model not at all.
    const page2 = await b.context.newPage();
    const log2 = [];
    recordRequests(page2, log2);
    await page2.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}&model=test/tiny`);
    await waitReady(page2);
    assert.match(await page2.textContent(".model-line"), /test\/tiny/);
    assert.equal(await page2.$('[data-testid="host-confirm"]'), null);
    assert.ok(!log2.some((u) => u.includes("assets/model/")), "with ?model= the built-in model is not downloaded");
    // Cached on the first load; a reload revalidates the branch with the hub (304).
    await page2.reload();
    await waitReady(page2);
    assert.ok(hub.conditional.some((h) => h.includes("test/tiny")), "a cached branch is revalidated");

    // ?hub=//evil: ignored with a message; the built-in model loads from the page.
    const page3 = await b.context.newPage();
    const log3 = [];
    recordRequests(page3, log3);
    await page3.goto(`${app.url}/?hub=${encodeURIComponent("//evil.example")}`);
    await waitReady(page3);
    assert.match(await page3.textContent('[data-testid="error"]'), /\?hub= is ignored/);
    await dropFile(page3, path.join(SAMPLES, "star.jpg"), "star.jpg", "image/jpeg");
    await waitResult(page3);
    assertOrigins(log3, [app.url]);
  } finally {
    await b.close();
    await app.close();
    await hub.close();
  }
});

/** The page's JS heap and the worker's wasm memory, after a garbage collection. */
async function memory(page) {
  const collected = await page.evaluate(async () => {
    if (!globalThis.gc) return false;
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  });
  assert.ok(collected, "the browser runs with --js-flags=--expose-gc");
  const heap = await page.evaluate(() => performance.memory.usedJSHeapSize);
  const worker = page.workers().at(-1);
  const wasm = worker ? await worker.evaluate(() => self.vitLensMemory?.buffer.byteLength ?? 0) : 0;
  return { heap, wasm };
}

if (SOAK) {
  test("soak: 200 images and 20 model switches, memory stays flat", async () => {
    const b = await launch(false, ["--enable-precise-memory-info", "--js-flags=--expose-gc"]);
    const app = await serveStatic(DIST);
    const hub = await serveHub(hostileRepos(), { chunk: 1 << 20, delayMs: 0 });
    try {
      const page = await b.context.newPage();
      const log = [];
      recordRequests(page, log);
      await page.goto(`${app.url}/?hub=${encodeURIComponent(hub.url)}`);
      await waitReady(page);
      const samples = fs.readdirSync(SAMPLES).filter((f) => f.endsWith(".jpg"));
      const workers = () => page.workers().length;
      // The images go into the page once, so the test itself holds no more per drop.
      const encoded = samples.map((f) => fs.readFileSync(path.join(SAMPLES, f)).toString("base64"));
      await page.evaluate((encoded) => {
        window.soakImages = encoded.map((b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
      }, encoded);
      let stamp = null;
      let start = null;
      let switches = 0;
      const t0 = Date.now();
      for (let i = 0; i < 200; i++) {
        if (i % 10 === 0) {
          const toHub = switches % 2 === 0;
          if (toHub) {
            await page.selectOption('[data-testid="model-select"]', "custom");
            await page.fill('[data-testid="model-url"]', "test/tiny");
            await page.click('[data-testid="model-load"]');
          } else {
            await page.selectOption('[data-testid="model-select"]', "embedded");
          }
          switches++;
          const want = toHub ? "test/tiny" : "built";
          await page.waitForFunction((w) => (document.querySelector(".model-line")?.textContent ?? "").includes(w), want, { timeout: TIMEOUT });
          // The current image runs again on the new model.
          if (i > 0) stamp = await waitResult(page, stamp);
        }
        // One script per image (drop, then wait for its caption), so the test itself adds
        // little to the page's heap.
        const k = i % samples.length;
        stamp = await page.evaluate(({ k, name }) => {
          const dt = new DataTransfer();
          dt.items.add(new File([window.soakImages[k]], name, { type: "image/jpeg" }));
          const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true });
          document.querySelector('[data-testid="drop-zone"]').dispatchEvent(drop);
          return new Promise((resolve, reject) => {
            const t0 = performance.now();
            const poll = () => {
              if ((document.querySelector(".caption")?.textContent ?? "").includes(name)) {
                resolve(document.querySelector('[data-testid="timings"]').dataset.totalMs);
              } else if (performance.now() - t0 > 120_000) {
                reject(new Error(`no result for ${name}`));
              } else {
                setTimeout(poll, 5);
              }
            };
            poll();
          });
        }, { k, name: `soak-${i}-${samples[k]}` });
        if (i === 21) start = await memory(page);
        if (process.env.SOAK_TRACE && i % 20 === 1) console.log(`    [${i}] ${JSON.stringify(await memory(page))}`);
      }
      const end = await memory(page);
      const ratio = (a, b2) => (b2 / a - 1) * 100;
      console.log(`    ${switches} switches, 200 images in ${((Date.now() - t0) / 1000).toFixed(0)} s; workers: ${workers()}`);
      console.log(`    page JS heap: ${(start.heap / 1e6).toFixed(1)} MB → ${(end.heap / 1e6).toFixed(1)} MB (${ratio(start.heap, end.heap).toFixed(1)} %)`);
      console.log(`    worker wasm memory: ${(start.wasm / 1e6).toFixed(1)} MB → ${(end.wasm / 1e6).toFixed(1)} MB (${ratio(start.wasm, end.wasm).toFixed(1)} %)`);
      results.soak = { start, end, switches };
      assert.equal(switches, 20);
      assert.equal(await page.$('[data-testid="error"]'), null, "no error during the soak");
      assert.ok(end.heap <= start.heap * 1.1, "the page's JS heap stays within 10 %");
      assert.ok(end.wasm <= start.wasm * 1.1, "the worker's wasm memory stays within 10 %");
      assertOrigins(log, [app.url, hub.url]);
    } finally {
      await b.close();
      await app.close();
      await hub.close();
    }
  });
}

/** `vit-lens teach` (the native library) on the same model and image, as JSON. */
function nativeTeaching(image) {
  const out = execFileSync("cargo", ["run", "--quiet", "--bin", "vit-lens", "--", "teach", "--image", image], {
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.toString());
}

const parseValues = (s) => (s ? s.split(",").map(Number) : []);

function assertValues(what, page, native, tol) {
  assert.equal(page.length, native.length, `${what}: ${page.length} values vs ${native.length}`);
  for (let i = 0; i < page.length; i++) {
    const t = tol * Math.max(1, Math.abs(native[i]));
    assert.ok(Math.abs(page[i] - native[i]) <= t, `${what}[${i}]: page ${page[i]} vs native ${native[i]}`);
  }
}

test("teach: every view shows the native library's numbers for the same model and image", async () => {
  const native = nativeTeaching(path.join(SAMPLES, "star.jpg"));
  const card = native.model.card;
  const img = native.image;
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, "assets", "model", "config.json")));
  assert.equal(card.layers, config.num_hidden_layers);
  assert.equal(card.heads, config.num_attention_heads);
  assert.equal(card.hidden_size, config.hidden_size);
  const b = await launch(false);
  const app = await serveStatic(DIST);
  try {
    const page = await b.context.newPage();
    const log = [];
    recordRequests(page, log);
    await page.goto(app.url + "/");
    await waitReady(page);
    await dropFile(page, path.join(SAMPLES, "star.jpg"), "star.jpg", "image/jpeg");
    await waitResult(page);
    await page.keyboard.press("t");
    await page.waitForSelector('[data-testid="view-tokens"]', { timeout: TIMEOUT });

    // Tokens: counts from the config, and the hovered patch's embedding.
    const summary = await page.$eval('[data-testid="tokens-summary"]', (e) => ({ ...e.dataset }));
    assert.equal(+summary.patches, card.patches);
    assert.equal(+summary.tokens, card.tokens);
    assert.equal(+summary.gridRows, config.image_size / config.patch_size);
    assert.equal(+summary.patchSize, config.patch_size);
    const box = await page.locator('[data-testid="tokens-canvas"]').boundingBox();
    const [r, c] = [5, 7];
    const g = img.grid_rows;
    await page.mouse.move(box.x + ((c + 0.5) / g) * box.width, box.y + ((r + 0.5) / g) * box.height);
    await page.waitForFunction((want) => document.querySelector('[data-testid="token-info"]')?.dataset.patchIndex === String(want), r * g + c);
    const token = await page.$eval('[data-testid="token-info"]', (e) => ({ ...e.dataset }));
    assert.equal(+token.tokenIndex, card.prefix_tokens + r * g + c);
    const row = img.patch_embeddings.slice((r * g + c) * img.hidden_size, (r * g + c) * img.hidden_size + 8);
    assertValues("patch embedding", parseValues(token.values), row, 1e-4);
    await page.screenshot({ path: path.join(SHOTS, "10-tokens.png") });

    // Attention explorer: the CLS row of the last layer, head 1, against the native one.
    await page.click('[data-testid="teach-tab-attention"]');
    await page.waitForSelector('[data-testid="view-attention"]');
    await page.selectOption('[data-testid="attention-layer"]', String(card.layers));
    await page.selectOption('[data-testid="attention-head"]', "0");
    await page.click('[data-testid="query-cls"]');
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid="view-attention"]').dataset;
      return v.head === "0" && v.query === "0";
    });
    const top = await page.$eval('[data-testid="attention-top"]', (e) => ({ ...e.dataset }));
    const clsRow = img.cls_attention[card.layers - 1][0];
    const nativeTop = clsRow.map((v, i) => [i, v]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 5);
    assertValues("top attention", parseValues(top.values), nativeTop.map((t) => t[1]), 1e-4);
    assert.equal(top.indices, nativeTop.map((t) => t[0]).join(","));
    assert.equal(await page.locator('[data-testid="head-multiple"]').count(), card.heads);
    const abox = await page.locator('[data-testid="attention-canvas"]').boundingBox();
    await page.mouse.move(abox.x + abox.width * 0.52, abox.y + abox.height * 0.47);
    await page.waitForFunction(() => document.querySelector('[data-testid="view-attention"]').dataset.query !== "0");
    await page.screenshot({ path: path.join(SHOTS, "11-attention.png") });

    // Fig. 7: filter components, position similarity, attention distance.
    await page.keyboard.press("3");
    await page.waitForSelector('[data-testid="view-fig7"]');
    const pca = await page.$eval('[data-testid="pca-variance"]', (e) => e.dataset.values);
    assertValues("explained variance", parseValues(pca), native.model.filter_pca.explained_variance_ratio, 1e-5);
    assert.equal(+(await page.$eval('[data-testid="pca-sheet"]', (e) => e.dataset.components)), native.model.filter_pca.components.length);
    const sim = await page.$eval('[data-testid="pos-sim"]', (e) => ({ ...e.dataset }));
    assert.equal(+sim.patches, card.patches);
    assert.equal(+sim.peaksAtSelf, card.patches, "every patch's similarity peaks at its own position");
    const simRow0 = native.model.position_similarity.values.slice(0, card.patches);
    assertValues("similarity row minimum", [+sim.rowMin], [Math.min(...simRow0)], 1e-5);
    const points = await page.$$eval('[data-testid="distance-point"]', (ps) => ps.map((p) => ({ l: +p.dataset.layer, h: +p.dataset.head, v: +p.dataset.value })));
    assert.equal(points.length, card.layers * card.heads);
    for (const p of points) assertValues(`distance L${p.l} H${p.h}`, [p.v], [img.attention_distance[p.l - 1][p.h - 1]], 1e-3);
    await page.screenshot({ path: path.join(SHOTS, "12-fig7.png"), fullPage: true });

    // Tour: every step, stepped with the keyboard, against the native forward pass.
    await page.click('[data-testid="teach-tab-tour"]');
    await page.waitForSelector('[data-testid="view-tour"]');
    const count = +(await page.$eval('[data-testid="tour-position"]', (e) => e.dataset.count));
    assert.equal(count, img.steps.length);
    assert.equal(count, 4 + 6 * card.layers + 3);
    for (let i = 0; i < count; i++) {
      await page.waitForFunction((i) => document.querySelector('[data-testid="tour-position"]')?.dataset.index === String(i), i);
      const step = await page.$eval('[data-testid="tour-step"]', (e) => ({ ...e.dataset }));
      const want = img.steps[i];
      assert.equal(step.key, want.key);
      assert.equal(step.shape, `(${want.shape.join(", ")})`);
      const scale = Math.max(1, want.mean_row_norm);
      assertValues(`step ${want.key}`, parseValues(step.values), want.values, 1e-4 * scale);
      assertValues(`step ${want.key} norm`, [+step.rowNorm], [want.row_norm], 1e-4 * scale);
      if (want.key === "layer1.attention") await page.screenshot({ path: path.join(SHOTS, "13-tour-attention.png") });
      await page.keyboard.press("ArrowRight");
    }

    // Model card.
    await page.keyboard.press("5");
    await page.waitForSelector('[data-testid="view-card"]');
    const fields = Object.fromEntries(await page.$$eval('[data-testid="card-field"]', (rows) => rows.map((r) => [r.dataset.field, r.dataset.value])));
    for (const k of ["parameters", "flops", "tokens", "patches", "layers", "heads", "hidden_size", "mlp_size", "patch_size", "image_size", "classes"]) {
      assert.equal(fields[k], String(card[k]), `card ${k}`);
    }
    assert.equal(fields.mlp_size, String(config.intermediate_size));
    assert.equal(fields.stored_dtype, "f16");
    await page.screenshot({ path: path.join(SHOTS, "14-card.png") });

    // Projector mode: the heatmap fills the screen height; the shortcut overlay.
    await page.keyboard.press("t");
    await page.keyboard.press("p");
    await page.waitForSelector(".app.projector");
    const hb = await page.locator('[data-testid="heatmap"]').boundingBox();
    assert.ok(hb.height >= 0.7 * 900, `projector heatmap is ${hb.height} px high`);
    const fontSize = await page.$eval(".app", (e) => parseFloat(getComputedStyle(e).fontSize));
    assert.ok(fontSize >= 22, `projector type is ${fontSize} px`);
    await page.screenshot({ path: path.join(SHOTS, "15-projector.png") });
    await page.keyboard.press("?");
    await page.waitForSelector('[data-testid="shortcuts"]');
    await page.screenshot({ path: path.join(SHOTS, "16-shortcuts.png") });
    await page.keyboard.press("Escape");
    await page.waitForSelector('[data-testid="shortcuts"]', { state: "detached" });
    assert.equal(await page.$('[data-testid="error"]'), null, "no error");
    assertOrigins(log, [app.url]);
  } finally {
    await b.close();
    await app.close();
  }
});

registerExplainTests({
  test, launch, serveStatic, recordRequests, waitReady, dropFile, waitResult, predictions, assertOrigins, assertValues, parseValues,
  ROOT, DIST, SAMPLES, SHOTS, TIMEOUT,
});

let failed = 0;
for (const t of tests) {
  if (ONLY && !t.name.includes(ONLY)) continue;
  const t0 = Date.now();
  try {
    await t.fn();
    console.log(`ok   ${t.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name}\n     ${e.stack ?? e}`);
  }
}
fs.writeFileSync(path.join(SHOTS, "results.json"), JSON.stringify(results, null, 1));
console.log(`${failed ? "FAILED" : "passed"}: screenshots in ${SHOTS}`);
process.exit(failed ? 1 : 0);
