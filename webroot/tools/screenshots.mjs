// Screenshots of the built pages for docs/ (no server: Playwright answers requests for
// https://localhost:8443/ from dist/, so the default server field reads as on a real start).
//   npm run build && node tools/screenshots.mjs [outdir=docs]
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve("dist");
const out = path.resolve(process.argv[2] || "docs");
const origin = "https://localhost:8443";
fs.mkdirSync(out, { recursive: true });
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--force-color-profile=srgb"],
});
async function shot(file, url, viewport = { width: 1280, height: 800 }, scheme = "light") {
  const ctx = await browser.newContext({ viewport, colorScheme: scheme, deviceScaleFactor: 1 });
  await ctx.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.origin !== origin) return route.abort(); // nothing leaves the machine
    const f = path.join(root, u.pathname === "/" ? "index.html" : decodeURIComponent(u.pathname));
    if (!f.startsWith(root) || !fs.existsSync(f)) return route.fulfill({ status: 404, body: "not found" });
    return route.fulfill({ status: 200, contentType: types[path.extname(f)] || "application/octet-stream", body: fs.readFileSync(f) });
  });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`${file}: ${e}`));
  await page.goto(`${origin}${url}`);
  await page.waitForLoadState("networkidle");
  await page.screenshot({ path: path.join(out, file), fullPage: true });
  await ctx.close();
  console.log(`${path.join(out, file)}`);
}
await shot("index.png", "/");
await shot("demo1.png", "/demo1.html");
await shot("demo2.png", "/demo2.html");
await shot("phone.png", "/phone.html?remember=0&user=alice&name=Alice&target=echo");
await shot("phone-mobile.png", "/phone.html?remember=0&user=alice&name=Alice", { width: 390, height: 844 });
await shot("phone-dark.png", "/phone.html?remember=0&user=alice&name=Alice", { width: 1280, height: 800 }, "dark");
await browser.close();
