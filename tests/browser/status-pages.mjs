// Drives the status pages in headless Chromium (Debian's /usr/bin/chromium via
// playwright-core): reads the home page, logs in, acknowledges an incident through the
// form, checks the page with JavaScript off, and collects console errors. Prints one JSON
// object. Usage: node status-pages.mjs BASE_URL ADMIN_TOKEN DOWN_SYSTEM_ID [SCREENSHOT_DIR]
import { chromium } from "playwright-core";

const [base, token, downSystem, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { consoleErrors: [] };
const watch = (page) => {
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
};
const shot = async (page, name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true }); };

const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "vi-VN" });
const page = await desktop.newPage();
watch(page);
await page.goto(base + "/");
out.systems = await page.locator("section.system h3").allInnerTexts();
out.downText = await page.locator(`#sys-${downSystem}`).locator("xpath=../..").locator(".state").first().innerText();
await shot(page, "status-home-desktop");

// The check page of the down system's first check.
await page.locator(`#sys-${downSystem}`).locator("xpath=../..").locator("ul.checks a").first().click();
out.checkTitle = await page.locator("main h2").first().innerText();
await shot(page, "status-check-page");

// Log in, acknowledge the open incident with a comment, and see it acknowledged.
await page.goto(base + "/ui/login");
await page.fill("input[name=token]", token);
await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
const form = page.locator("article.incident form").first();
await form.locator("input[name=by]").fill("Trần Văn An");
await form.locator("input[name=comment]").fill("Đang kiểm tra máy chủ MCU");
await shot(page, "status-ack-before");
await Promise.all([page.waitForNavigation(), form.locator("button[type=submit]").click()]);
out.ackedText = await page.locator("article.incident").first().innerText();
await shot(page, "status-ack-after");

const mobile = await browser.newContext({ viewport: { width: 360, height: 780 }, locale: "vi-VN", isMobile: true });
const small = await mobile.newPage();
watch(small);
await small.goto(base + "/");
out.mobileOverflow = await small.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
await shot(small, "status-home-360px");

const noJs = await browser.newContext({ javaScriptEnabled: false });
const plain = await noJs.newPage();
await plain.goto(base + "/");
out.noJsSystems = await plain.locator("section.system h3").count();

await browser.close();
console.log(JSON.stringify(out));
