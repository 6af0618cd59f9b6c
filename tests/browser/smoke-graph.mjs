// Opens a check page in headless Chromium (Debian's /usr/bin/chromium via playwright-core)
// and measures its smoke graph: console errors, the SVG's size in bytes, its paths, any
// script, and the size it renders at. Prints one JSON object.
// Usage: node smoke-graph.mjs CHECK_PAGE_URL
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { consoleErrors: [] };
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
const response = await page.goto(url);
out.status = response.status();
const svg = page.locator("svg.smoke").first();
out.graphs = await page.locator("svg.smoke").count();
if (out.graphs > 0) {
  out.svgBytes = new TextEncoder().encode(await svg.evaluate((e) => e.outerHTML)).length;
  out.paths = await svg.locator("path").count();
  out.scripts = await svg.locator("script").count() + await page.locator("script").count();
  const box = await svg.boundingBox();
  out.width = box ? box.width : 0;
  out.height = box ? box.height : 0;
  out.caption = await page.locator("figure.smoke figcaption").first().innerText();
}
await browser.close();
console.log(JSON.stringify(out));
