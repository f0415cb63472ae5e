// Lighthouse audits of several pages in one Node process and one Chromium.
//
// Usage: node bench/lighthouse.mjs JOBS.json OUT_DIR
// JOBS.json: [{"url": "...", "headers": {...} | null}, ...]; writes OUT_DIR/N.json, the
// Lighthouse result (LHR) of job N, or {"error": "..."} when that audit failed.
//
// One process and one browser for all of them: a separate `lighthouse` CLI run per page
// spends about half its time starting Node, resolving the config and launching Chromium
// (measured: 11.6 s per page from the CLI, 5.6 s of it Lighthouse's own work). Between
// audits the browser's cookies are cleared and Lighthouse clears the origin's storage and
// cache, so each is a first visit with only the cookies of its own headers.
import fs from "node:fs";
import path from "node:path";

import * as chromeLauncher from "chrome-launcher";
import lighthouse from "lighthouse";
import puppeteer from "puppeteer-core";

const [jobsFile, outDir] = process.argv.slice(2);
const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));
const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROME_PATH,
  chromeFlags: (process.env.LIGHTHOUSE_CHROME_FLAGS || "").split(" ").filter(Boolean),
});
const browser = await puppeteer.connect({ browserURL: `http://127.0.0.1:${chrome.port}` });
try {
  for (const [n, job] of jobs.entries()) {
    let written;
    const page = await browser.newPage();
    try {
      const cdp = await page.createCDPSession();
      await cdp.send("Network.clearBrowserCookies");
      await cdp.detach();
      const result = await lighthouse(job.url, {
        port: chrome.port,
        output: "json",
        logLevel: "error",
        onlyCategories: ["performance", "accessibility"],
        formFactor: "mobile",
        maxWaitForLoad: 30000,
        extraHeaders: job.headers || undefined,
      }, undefined, page);
      written = result ? result.report : JSON.stringify({ error: "no result" });
    } catch (error) {
      written = JSON.stringify({ error: String(error && error.message ? error.message : error) });
    } finally {
      await page.close();
    }
    fs.writeFileSync(path.join(outDir, `${n}.json`), written);
  }
} finally {
  await browser.disconnect();
  await chrome.kill();
}
