// Explain mode's browser test, registered by run.mjs with its helpers: the page's maps and
// logit lens against `vit-lens explain --json` on the same image, then hidden patches and a
// head switched off.
import path from "node:path";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

export function registerExplainTests(h) {
  const { test, launch, serveStatic, recordRequests, waitReady, dropFile, waitResult, predictions, assertOrigins, assertValues, parseValues } = h;
  const { ROOT, DIST, SAMPLES, SHOTS, TIMEOUT } = h;

  /** `vit-lens explain` (the native library) for one class of the same model and image, as JSON. */
  function nativeExplanation(image, cls) {
    const out = execFileSync(
      "cargo",
      ["run", "--quiet", "--bin", "vit-lens", "--", "explain", "--image", image, "--class", String(cls), "--no-interventions", "--json"],
      { cwd: ROOT, maxBuffer: 64 << 20 },
    );
    return JSON.parse(out.toString());
  }

  /** `vit-lens explain --hide … --heads-off …`: the native "what if" top 5 of the same image. */
  function nativeWhatIf(image, hidden, heads) {
    const args = ["run", "--quiet", "--bin", "vit-lens", "--", "explain", "--image", image, "--no-interventions", "--json"];
    if (hidden.length) args.push("--hide", hidden.join(","));
    if (heads.length) args.push("--heads-off", heads.join(","));
    const out = execFileSync("cargo", args, { cwd: ROOT, maxBuffer: 64 << 20 });
    return JSON.parse(out.toString()).what_if.top;
  }

  /** The page's "what if" top 5 equals the native one within 1e-4. */
  function assertWhatIf(what, page, native) {
    assert.equal(page.length, native.length, `${what}: ${page.length} classes vs ${native.length}`);
    for (const n of native) {
      const p = page.find((q) => q.index === n.index);
      assert.ok(p, `${what}: class ${n.index} missing on the page`);
      assert.ok(Math.abs(p.prob - n.prob) <= 1e-4, `${what}: class ${n.index} page ${p.prob} vs native ${n.prob}`);
    }
  }

  /** A map's values equal the native ones within `tol` of the native map's largest magnitude. */
  function assertMap(what, page, native, tol) {
    assert.equal(page.length, native.length, `${what}: ${page.length} values vs ${native.length}`);
    const scale = Math.max(...native.map(Math.abs), 1e-12);
    for (let i = 0; i < page.length; i++) {
      assert.ok(Math.abs(page[i] - native[i]) <= tol * scale, `${what}[${i}]: page ${page[i]} vs native ${native[i]}`);
    }
  }

  /** Waits until Explain shows class `cls` with all three maps (and, if given, a chefer map other than `not`). */
  async function waitExplained(page, cls, not) {
    await page.waitForFunction(
      ({ cls, not }) => {
        const v = document.querySelector('[data-testid="view-explain"]');
        const m = (id) => document.querySelector(`[data-testid="${id}"]`)?.dataset.map;
        return v?.dataset.class === String(cls) && m("map-rollout") && m("map-grad-rollout") && m("map-chefer") && m("map-chefer") !== not;
      },
      { cls, not },
      { timeout: TIMEOUT },
    );
    const map = (id) => page.$eval(`[data-testid="${id}"]`, (e) => e.dataset.map);
    return {
      layer: +(await page.$eval('[data-testid="view-explain"]', (e) => e.dataset.layer)),
      rollout: parseValues(await map("map-rollout")),
      chefer: parseValues(await map("map-chefer")),
      grad_rollout: parseValues(await map("map-grad-rollout")),
    };
  }

  test("explain: class-specific maps and the logit lens match the native library for the top-1 and a picked class", async () => {
    const image = path.join(SAMPLES, "star.jpg");
    const b = await launch(false);
    const app = await serveStatic(DIST);
    try {
      const page = await b.context.newPage();
      const log = [];
      recordRequests(page, log);
      await page.goto(app.url + "/");
      await waitReady(page);
      await dropFile(page, image, "star.jpg", "image/jpeg");
      await waitResult(page);
      const preds = await predictions(page);
      assert.ok(preds.length >= 2, "at least two classes");
      const forwardMs = await page.$eval('[data-testid="timings"]', (t) => +t.dataset.forwardMs);
      const t0 = Date.now();
      await page.click('[data-testid="mode-explain"]');
      await page.waitForSelector('[data-testid="view-explain"]');

      // The top-1 by default.
      const first = await waitExplained(page, preds[0].index);
      const mapsMs = Date.now() - t0;
      await page.waitForSelector('[data-testid="head-effect"]', { timeout: 120_000 });
      const interventionsMs = Date.now() - t0;
      console.log(
        `    explain on the CPU (wasm): forward ${forwardMs} ms; click → maps and lens ${mapsMs} ms; ` +
          `click → occlusion, head effects and faithfulness ${interventionsMs} ms`,
      );
      const native1 = nativeExplanation(image, preds[0].index);
      assert.equal(native1.class, preds[0].index);
      const layers = native1.maps.chefer.length;
      assert.equal(first.layer, layers, "the layer slider starts at the last layer");
      for (const k of ["rollout", "chefer", "grad_rollout"]) assertMap(`${k} (top-1)`, first[k], native1.maps[k][first.layer - 1], 1e-4);

      // Logit lens: one row per layer, the last one the model's own top 5.
      const lens = await page.$$eval('[data-testid="lens-layer"]', (rows) =>
        rows.map((r) => [...r.querySelectorAll("td[data-index]")].map((c) => ({ index: +c.dataset.index, prob: +c.dataset.prob }))),
      );
      assert.equal(lens.length, layers);
      assert.deepEqual(lens[layers - 1].map((p) => p.index), preds.map((p) => p.index));
      assertValues("last lens layer", lens[layers - 1].map((p) => p.prob), preds.map((p) => p.prob), 1e-4);
      for (let l = 0; l < layers; l++) {
        assertValues(`lens layer ${l + 1}`, lens[l].map((p) => p.prob), native1.logit_lens[l].map((p) => p.prob), 1e-4);
      }
      await page.screenshot({ path: path.join(SHOTS, "20-explain-maps.png"), fullPage: true });

      // The interventions arrive in a second answer.
      await page.waitForFunction(() => document.querySelector('[data-testid="map-occlusion"]')?.dataset.map && document.querySelectorAll('[data-testid="faithfulness"]').length > 0, null, { timeout: TIMEOUT });
      const orders = await page.$$eval('[data-testid="faithfulness"]', (rows) => rows.map((r) => r.dataset.order));
      assert.deepEqual(orders, ["rollout", "chefer", "grad_rollout", "occlusion", "random"]);
      const heads = await page.locator('[data-testid="head-effect"]').count();
      assert.ok(heads >= 1 && heads <= 10, `${heads} head effects`);
      assert.equal(parseValues(await page.$eval('[data-testid="map-occlusion"]', (e) => e.dataset.map)).length, first.chefer.length);
      await page.screenshot({ path: path.join(SHOTS, "21-explain-what-if.png"), fullPage: true });

      // Clicking the second row explains that class instead.
      await page.click(`[data-testid="prediction"][data-index="${preds[1].index}"]`);
      const second = await waitExplained(page, preds[1].index, first.chefer.join(","));
      const native2 = nativeExplanation(image, preds[1].index);
      assert.equal(native2.class, preds[1].index);
      for (const k of ["chefer", "grad_rollout"]) assertMap(`${k} (second)`, second[k], native2.maps[k][second.layer - 1], 1e-4);
      assertMap("rollout is class-agnostic", second.rollout, first.rollout, 1e-6);
      const diff = Math.max(...second.chefer.map((v, i) => Math.abs(v - first.chefer[i])));
      assert.ok(diff > 1e-3 * Math.max(...first.chefer.map(Math.abs)), "the two classes' chefer maps differ");
      assert.ok(await page.$('[data-testid="prediction"].picked[data-index="' + preds[1].index + '"]'), "the picked row is marked");
      await page.screenshot({ path: path.join(SHOTS, "22-explain-second-class.png"), fullPage: true });

      // Typing a class index works the same.
      await page.fill('[data-testid="explain-class-input"]', String(preds[0].index));
      await page.click('[data-testid="explain-class-go"]');
      const again = await waitExplained(page, preds[0].index, second.chefer.join(","));
      assertMap("chefer (typed)", again.chefer, first.chefer, 1e-6);

      // What if: hide the patches the chefer map ranks highest, then switch a head off.
      const whatIf = () => page.$$eval('[data-testid="what-if-prediction"]', (rows) => rows.map((r) => ({ index: +r.dataset.index, prob: +r.dataset.prob })));
      const waitWhatIf = (hidden, heads) =>
        page.waitForFunction(
          ({ hidden, heads }) => {
            const w = document.querySelector('[data-testid="what-if"]')?.dataset;
            return w && w.hidden === String(hidden) && w.headsOff === String(heads) && document.querySelectorAll('[data-testid="what-if-prediction"]').length > 0;
          },
          { hidden, heads },
          { timeout: 60_000 },
        ).catch(async (e) => {
          await page.screenshot({ path: path.join(SHOTS, "explain-what-if-failure.png"), fullPage: true });
          const state = await page.$eval('[data-testid="view-explain"]', (v) => v.querySelector('[data-testid="what-if"]')?.outerHTML.slice(0, 600) + " | " + (v.querySelector('[data-testid="explain-error"]')?.textContent ?? "no error"));
          throw new Error(`what-if (${hidden} patches, ${heads} heads) did not answer: ${state}\n${e.message}`);
        });
      const grid = Math.round(Math.sqrt(first.chefer.length));
      assert.equal(grid * grid, first.chefer.length);
      const top = first.chefer.map((v, i) => [i, v]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 12).map((t) => t[0]);
      await page.locator('[data-testid="what-if-canvas"]').scrollIntoViewIfNeeded();
      const cbox = await page.locator('[data-testid="what-if-canvas"]').boundingBox();
      for (const p of top) {
        const [r, c] = [Math.floor(p / grid), p % grid];
        await page.mouse.click(cbox.x + ((c + 0.5) / grid) * cbox.width, cbox.y + ((r + 0.5) / grid) * cbox.height);
      }
      await waitWhatIf(top.length, 0);
      const hiddenPreds = await whatIf();
      assert.equal(hiddenPreds.length, preds.length);
      const probOf = (list, k) => list.find((p) => p.index === k)?.prob ?? 0;
      assert.ok(Math.abs(probOf(hiddenPreds, preds[0].index) - preds[0].prob) > 1e-4, "hiding the most relevant patches changes the prediction");
      assertWhatIf("hidden patches", hiddenPreds, nativeWhatIf(image, top, []));
      await page.screenshot({ path: path.join(SHOTS, "23-explain-hidden-patches.png"), fullPage: true });
      await page.click('[data-testid="head-toggle"][data-layer="0"][data-head="0"]');
      await waitWhatIf(top.length, 1);
      const knocked = await whatIf();
      assert.notDeepEqual(knocked, hiddenPreds, "switching a head off changes the probabilities");
      assertWhatIf("hidden patches and head 0:0 off", knocked, nativeWhatIf(image, top, ["0:0"]));
      await page.click('[data-testid="what-if-reset"]');
      await page.waitForFunction(() => document.querySelector('[data-testid="what-if"]')?.dataset.hidden === "0");
      assert.equal(await page.locator('[data-testid="what-if-prediction"]').count(), 0);
      assert.equal(await page.$('[data-testid="explain-error"]'), null, "no explain error");
      assert.equal(await page.$('[data-testid="error"]'), null, "no error");
      assertOrigins(log, [app.url]);
    } finally {
      await b.close();
      await app.close();
    }
  });
}
