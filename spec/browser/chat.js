#!/usr/bin/env node
// The sandbox chat page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded).
//
//   node spec/browser/chat.js URL [SCREENSHOT]     (default build/screenshots/chat.png)
//
// URL is a running sandbox whose bot is spec/sandbox_spec.lua's test bot ("Sandbox Pizza"):
// "hi" gets a welcome with the reply buttons Menu / Help, Menu gets a list ("See menu") whose
// row "Pizza" gets a reaction, a template ("Your Pizza is in the oven.") with a quick-reply
// button "Track order", and a text; the bot marks every message read. The script holds that
// conversation, waits for each reply in the DOM, checks the ticks, and saves a screenshot.
// It exits 0 on success and 1 with a message on the first failure.
"use strict";

const path = require("path");
const fs = require("fs");

const url = process.argv[2];
const shot = process.argv[3] || path.join("build", "screenshots", "chat.png");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15000;

function fail(msg) {
  console.error("chat.js: FAILED: " + msg);
  process.exitCode = 1;
}

async function main() {
  if (!url) throw new Error("usage: node chat.js URL [SCREENSHOT]");
  let chromium;
  try {
    ({ chromium } = require("playwright-core"));
  } catch (e) {
    throw new Error("playwright-core is not installed: run `npm ci` in spec/browser (" + e.message + ")");
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM + " not found: install Debian's chromium package");

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
    // Nothing may be fetched from anywhere but the sandbox itself.
    const origin = new URL(url).origin;
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(origin) && !u.startsWith("data:")) problems.push("external request: " + u);
    });

    const step = async (what, fn) => {
      try {
        return await fn();
      } catch (e) {
        throw new Error(what + ": " + e.message.split("\n").slice(0, 6).join("\n"));
      }
    };
    // A message by its own text (not the quote of the message it answers).
    const bot = (text) => page.locator(".row.in").filter({ has: page.locator(".txt", { hasText: text }) });
    const me = (text) => page.locator(".row.out").filter({ has: page.locator(".txt", { hasText: text }) });

    await step("open the page", async () => {
      await page.goto(url, { waitUntil: "domcontentloaded" });
      await page.locator("#bizname", { hasText: "Sandbox Pizza" }).waitFor();
    });

    await step("send hi", async () => {
      await page.fill("#text", "hi");
      await page.press("#text", "Enter");
      await me("hi").waitFor();
      await bot("Welcome to").locator("b", { hasText: "Sandbox Pizza" }).waitFor();
    });

    await step("tap the reply button Menu", async () => {
      const button = bot("Welcome to").locator("button.btn[data-reply-id=menu]");
      if ((await button.textContent()).trim() !== "Menu") throw new Error("the button is not titled Menu");
      await button.click();
      await me("Menu").waitFor();
      await bot("Pick a dish").locator("button.list-open", { hasText: "See menu" }).waitFor();
    });

    await step("open the list and tap the row Pizza", async () => {
      await bot("Pick a dish").locator("button.list-open").click();
      await page.locator("#sheet-bg.open .section", { hasText: "Pizzas" }).waitFor();
      await page.locator(".rowbtn[data-row-id=pizza]").click();
      await page.locator("#sheet-bg.open").waitFor({ state: "hidden" });
      await me("Pizza").waitFor();
      await bot("Your Pizza is in the oven.").waitFor();
      await bot("You chose Pizza").waitFor();
    });

    await step("check the template", async () => {
      const tpl = bot("Your Pizza is in the oven.");
      await tpl.locator(".hdr", { hasText: "Order confirmed" }).waitFor();
      await tpl.locator(".foot", { hasText: "Sandbox Pizza" }).waitFor();
      await tpl.locator("button.btn", { hasText: "Track order" }).waitFor();
    });

    await step("check the reaction on the row the user picked", async () => {
      await me("Pizza").locator(".reaction", { hasText: "\u{1F44D}" }).waitFor();
    });

    await step("tap the template's quick reply", async () => {
      await bot("Your Pizza is in the oven.").locator("button.btn", { hasText: "Track order" }).click();
      await me("Track order").waitFor();
      await bot("On its way").waitFor();
    });

    await step("check the ticks (blue once the bot read every message)", async () => {
      const mine = page.locator(".row.out");
      const n = await mine.count();
      if (n !== 4) throw new Error("expected 4 messages of the user, found " + n);
      await page.waitForFunction(() => {
        const rows = document.querySelectorAll(".row.out");
        return rows.length > 0 && Array.from(rows).every((r) => {
          const t = r.querySelector(".ticks");
          return t && t.getAttribute("data-status") === "read" && t.textContent === "\u2713\u2713";
        });
      }, null, { timeout: TIMEOUT });
      const color = await mine.first().locator(".ticks").evaluate((t) => getComputedStyle(t).color);
      if (color !== "rgb(83, 189, 235)") throw new Error("read ticks are not blue: " + color);
    });

    await step("the bot's messages were read by the user", async () => {
      await page.waitForFunction(() => {
        const rows = document.querySelectorAll(".row.in");
        return rows.length >= 4 && Array.from(rows).every((r) => r.getAttribute("data-status") === "read");
      }, null, { timeout: TIMEOUT });
    });

    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: false });
    if (problems.length) throw new Error(problems.join("; "));
    console.log("chat.js: ok, screenshot " + shot);
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail(e.message));
