// The fine-tuning review queue in a real browser (Debian's chromium, driven by playwright-core),
// against a running `zhiku serve` (started by tests/web_ui.rs) whose knowledge base "deb" has
// pairs waiting. Environment: ZHIKU_URL, ZHIKU_EDITOR_KEY (an editor of "deb"), ZHIKU_VIEWER_KEY
// (a viewer), ZHIKU_SCREENSHOTS, ZHIKU_CHROMIUM, ZHIKU_NODE_MODULES. Prints the ids it accepted
// (after correcting the answer) and rejected as JSON; exits non-zero with the failed step on stderr.
import { createRequire } from "node:module";

const { chromium } = createRequire(`${process.env.ZHIKU_NODE_MODULES}/`)("playwright-core");

const url = process.env.ZHIKU_URL;
const browser = await chromium.launch({ executablePath: process.env.ZHIKU_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const signIn = async (key) => {
  const page = await browser.newPage({ locale: "en-US", viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (e) => failures.push(`page error: ${e}`));
  await page.goto(url);
  await page.fill("#key", key);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  await page.click("[data-view=review]");
  await page.selectOption("#review-kb", "deb");
  return page;
};
let decided = {};
try {
  // A viewer is told that reviewing is for editors, and sees no pairs.
  const viewer = await signIn(process.env.ZHIKU_VIEWER_KEY);
  await viewer.waitForFunction(() => document.querySelector("#review-result").textContent.length > 0);
  check((await viewer.textContent("#review-result")).includes("editors"), `viewer: ${await viewer.textContent("#review-result")}`);
  check((await viewer.locator("#pairs li").count()) === 0, "a viewer sees pairs");

  const page = await signIn(process.env.ZHIKU_EDITOR_KEY);
  await page.waitForSelector("#pairs li");
  const pending = await page.locator("#pairs li").count();
  check(pending >= 2, `pending pairs: ${pending}`);
  const first = page.locator("#pairs li").nth(0);
  const second = page.locator("#pairs li").nth(1);
  const accepted = await first.getAttribute("data-pair");
  const rejected = await second.getAttribute("data-pair");
  await first.locator("textarea").nth(1).fill("See chapter 2 of the Debian Reference.");
  await page.screenshot({ path: `${process.env.ZHIKU_SCREENSHOTS}/6-review.png`, fullPage: true });
  await first.getByRole("button", { name: "Accept" }).click();
  await page.waitForFunction((id) => document.querySelector("#review-result").textContent.includes(`#${id}`), accepted);
  await page.waitForFunction((n) => document.querySelectorAll("#pairs li").length === n, pending - 1);
  await page.locator(`#pairs li[data-pair="${rejected}"]`).getByRole("button", { name: "Reject" }).click();
  await page.waitForFunction((n) => document.querySelectorAll("#pairs li").length === n, pending - 2);
  // The accepted pair shows under "Accepted", with its correction, marked as edited.
  await page.selectOption("#review-status", "accepted");
  await page.waitForFunction((id) => document.querySelector(`#pairs li[data-pair="${id}"]`), accepted);
  const shown = page.locator(`#pairs li[data-pair="${accepted}"]`);
  check((await shown.locator("textarea").nth(1).inputValue()) === "See chapter 2 of the Debian Reference.", "the correction is kept");
  check((await shown.locator(".where").textContent()).includes("edited"), "the pair is marked as edited");
  // 中文 too.
  await page.click("#lang");
  check((await page.textContent("[data-view=review]")) === "审核", "the tab is translated");
  decided = { accepted: Number(accepted), rejected: Number(rejected) };
} finally {
  await browser.close();
}
if (failures.length) {
  console.error("FAILED:\n" + failures.join("\n"));
  process.exit(1);
}
console.log(JSON.stringify(decided));
