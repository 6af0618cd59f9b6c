// Opens a report file in headless Chromium (Debian's /usr/bin/chromium): prints the console
// errors as JSON, and a screenshot of the first page when a path is given.
// Usage: node report.mjs REPORT.html [SCREENSHOT.png]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [file, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 900, height: 1270 } });
const errors = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
await page.goto(pathToFileURL(file).href);
const title = await page.locator("h1").innerText();
if (shot) await page.screenshot({ path: shot });
await browser.close();
console.log(JSON.stringify({ errors, title }));
