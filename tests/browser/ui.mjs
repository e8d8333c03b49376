// Drives Debian's Chromium through playwright-core over a running `dvx serve`, looks at the
// pages as a person would, saves a screenshot of each, and prints what it saw as JSON for
// the Rust test to assert on.
// usage: node ui.mjs BASE_URL OUT_DIR FAILED_STAGE TARGET
import { createRequire } from "node:module";

const require = createRequire(process.env.DVX_PLAYWRIGHT_DIR + "/");
const { chromium } = require("playwright-core");
const [base, out, failedStage, target] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.DVX_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const visit = async (path, shot) => {
    const resp = await page.goto(base + path);
    await page.screenshot({ path: `${out}/${shot}.png`, fullPage: true });
    return resp.status();
  };

  seen.pipelineStatus = await visit("/", "pipeline");
  seen.stages = await page.$$eval("svg.graph g.stage", (gs) =>
    gs.map((g) => ({ stage: g.dataset.stage, state: g.dataset.state })));
  // The failed stage's box links to its run: follow it as a person would.
  await page.click(`svg.graph g.stage[data-stage="${failedStage}"]`);
  await page.waitForURL(/\/runs\/[0-9a-f]{64}$/);
  await page.screenshot({ path: `${out}/failed-run.png`, fullPage: true });
  seen.failedRunStderr = await page.textContent("pre.stderr");
  seen.failedRunResult = await page.textContent("dd.failed");

  seen.historyStatus = await visit("/history", "metrics");
  seen.charts = await page.$$eval("figure.chart", (fs) =>
    fs.map((f) => ({
      metric: f.dataset.metric,
      points: [...f.querySelectorAll("circle.point")].map((c) => Number(c.dataset.value)),
    })));

  seen.lineageStatus = await visit("/lineage?target=" + encodeURIComponent(target), "lineage");
  seen.lineageRuns = await page.$$eval("main ul li a", (as) => as.map((a) => a.textContent));
  seen.lineageHasGraph = (await page.$("div.lineage svg")) !== null;

  seen.runsStatus = await visit("/runs", "runs");
  seen.commitStatus = await visit("/commits/HEAD", "commit");
  seen.commitFiles = await page.$$eval("tr.file td:first-child", (tds) => tds.map((t) => t.textContent));
  seen.missingStatus = await visit("/runs/0123456789abcdef", "missing-run");
  seen.missingText = await page.textContent("main");
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
