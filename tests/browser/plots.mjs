// Opens a page `dvx plots` wrote in Chromium, counts what is drawn, and keeps a screenshot.
// usage: node plots.mjs FILE.html SHOT.png
import { createRequire } from "node:module";

const require = createRequire(process.env.DVX_PLAYWRIGHT_DIR + "/");
const { chromium } = require("playwright-core");
const [file, shot] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.DVX_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  // Offline: a page that fetched anything would fail here.
  await page.route("**/*", (r) => (r.request().url().startsWith("file:") ? r.continue() : r.abort()));
  await page.goto("file://" + file);
  await page.screenshot({ path: shot, fullPage: true });
  const plots = await page.$$eval("svg.plot", (ss) =>
    ss.map((s) => ({
      plot: s.dataset.plot,
      series: [...s.querySelectorAll("g.series")].map((g) => ({
        rev: g.dataset.rev,
        y: g.dataset.y,
        points: Number(g.dataset.points),
        drawn: g.querySelectorAll("polyline, circle").length,
        width: g.querySelector("polyline, circle")?.getBoundingClientRect().width ?? 0,
      })),
    })));
  console.log(JSON.stringify(plots));
} finally {
  await browser.close();
}
