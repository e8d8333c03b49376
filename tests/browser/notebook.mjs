// Opens the page `dvx show RUN --html` wrote for an executed notebook in Chromium, offline,
// reports what is drawn, and keeps a screenshot.
// usage: node notebook.mjs FILE.html SHOT.png
import { createRequire } from "node:module";

const require = createRequire(process.env.DVX_PLAYWRIGHT_DIR + "/");
const { chromium } = require("playwright-core");
const [file, shot] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.DVX_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const fetched = [];
  // Offline: anything but the file itself (and its inline data) is refused and noted.
  await page.route("**/*", (r) => {
    const url = r.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return r.continue();
    fetched.push(url);
    return r.abort();
  });
  await page.goto("file://" + file);
  await page.screenshot({ path: shot, fullPage: true });
  const seen = await page.evaluate(() => ({
    title: document.title,
    cells: document.querySelectorAll("section.cell").length,
    markdownHeadings: [...document.querySelectorAll("section.markdown h1, section.markdown h2")].map((h) => h.textContent),
    injected: [...document.querySelectorAll("section.injected pre.source")].map((p) => p.textContent),
    streams: [...document.querySelectorAll("pre.stream")].map((p) => p.textContent),
    errors: [...document.querySelectorAll("pre.error")].map((p) => p.textContent),
    images: [...document.querySelectorAll("div.image img")].map((i) => ({
      loaded: i.complete && i.naturalWidth > 0,
      width: i.naturalWidth,
    })),
    tables: document.querySelectorAll("div.html table").length,
  }));
  seen.fetched = fetched;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
