// The web app in a real browser (Debian's chromium, driven by playwright-core), against a
// running `zhiku serve` (started by tests/web_ui.rs). Environment: ZHIKU_URL, ZHIKU_ADMIN_KEY,
// ZHIKU_KEY (a user in group staff), ZHIKU_UPLOAD (a file to upload into a new knowledge base
// "hr" readable by group:staff), ZHIKU_SCREENSHOTS (a folder for the screenshots),
// ZHIKU_CHROMIUM (the browser), ZHIKU_NODE_MODULES (where playwright-core is installed),
// ZHIKU_PAGE_PORT (where to serve the intranet page that embeds the widget).
// Exits non-zero with the failed step on stderr.
import http from "node:http";
import { createRequire } from "node:module";

// ES modules ignore NODE_PATH: resolve the package from the folder the test script installed it in.
const { chromium } = createRequire(`${process.env.ZHIKU_NODE_MODULES}/`)("playwright-core");

const url = process.env.ZHIKU_URL;
const shots = process.env.ZHIKU_SCREENSHOTS;
const browser = await chromium.launch({ executablePath: process.env.ZHIKU_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
try {
  const page = await browser.newPage({ locale: "en-US", viewport: { width: 1100, height: 800 } });
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("401")) problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(url)) external.push(r.url()); });

  await page.goto(url);
  // A wrong key is refused with a message.
  await page.fill("#key", "zk_wrong_0000");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
  check(!(await page.isVisible("#chat")), "a wrong key opened the app");

  // The administrator makes a knowledge base and uploads a file, watching the progress.
  await page.fill("#key", process.env.ZHIKU_ADMIN_KEY);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  await page.click("[data-view=documents]");
  await page.fill("#new-kb-name", "hr");
  await page.fill("#new-kb-acl", "group:staff");
  await page.click("#new-kb button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#docs-kb").value === "hr");
  await page.setInputFiles("#files", process.env.ZHIKU_UPLOAD);
  await page.waitForFunction(() => document.querySelector("#upload-status").textContent.startsWith("Done"), null, { timeout: 120000 });
  check((await page.textContent("#upload-status")).includes("1 ingested"), `upload status: ${await page.textContent("#upload-status")}`);
  check((await page.getAttribute("#upload-progress", "value")) === "1", "the progress bar reached the end");
  await page.waitForSelector("#docs tbody tr");
  check((await page.textContent("#docs tbody")).includes("leave.md"), "the uploaded document is listed");
  await page.screenshot({ path: `${shots}/0-upload.png`, fullPage: true });

  // Administration: the finished job, a new key shown once, then revoked.
  await page.click("[data-view=admin]");
  await page.waitForSelector("#jobs tbody tr");
  check((await page.textContent("#jobs tbody")).includes("done"), `jobs: ${await page.textContent("#jobs tbody")}`);
  await page.fill("#new-key-name", "bob");
  await page.click("#new-key button[type=submit]");
  await page.waitForSelector("#new-key-result code");
  check((await page.textContent("#new-key-result code")).startsWith("zk_"), "the new key is shown");
  const bobRow = page.locator("#keys tbody tr", { hasText: "bob" });
  await bobRow.getByRole("button").click();
  await page.waitForFunction(() => [...document.querySelectorAll("#keys tbody tr")].some((r) => r.textContent.includes("bob") && r.textContent.includes("revoked")));

  // Users and the audit log: an account with a password; the log has the knowledge base's creation.
  await page.fill("#new-user-name", "carol");
  await page.fill("#new-user-password", "carol's long password");
  await page.click("#new-user button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#users tbody").textContent.includes("carol"));
  await page.fill("#member-group", "finance");
  await page.fill("#member-name", "carol");
  await page.click("#add-member button[type=submit]");
  await page.waitForFunction(() => [...document.querySelectorAll("#users tbody tr")].some((r) => r.textContent.includes("carol") && r.textContent.includes("finance")));
  await page.waitForFunction(() => document.querySelector("#audit tbody").textContent.includes("kb.create"));
  check((await page.textContent("#audit-chain")).includes("intact"), `audit chain: ${await page.textContent("#audit-chain")}`);
  await page.screenshot({ path: `${shots}/0-admin.png`, fullPage: true });
  // Roles: the knowledge base's readers are listed; carol becomes an editor.
  await page.click("[data-view=documents]");
  await page.waitForSelector("#kb-roles:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#roles tbody").textContent.includes("group:staff"));
  await page.fill("#grant-principal", "user:carol");
  await page.selectOption("#grant-role", "editor");
  await page.click("#grant button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#roles tbody").textContent.includes("user:carol"));
  await page.click("#logout");

  // carol signs in with her password (a wrong one first): an editor may upload, not manage roles.
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#user", "carol");
  await page.fill("#password", "not her password");
  await page.click("#password-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#password-error").textContent.length > 0);
  await page.fill("#password", "carol's long password");
  await page.click("#password-form button[type=submit]");
  await page.waitForSelector("#chat:not([hidden])");
  const cookies = await page.context().cookies();
  check(cookies.some((c) => c.name === "zhiku_session" && c.httpOnly && c.sameSite === "Strict"), `session cookie: ${JSON.stringify(cookies)}`);
  await page.click("[data-view=documents]");
  await page.waitForSelector("#docs tbody tr");
  check(await page.locator("#drop").isVisible(), "an editor is not offered the upload");
  check(await page.locator("#kb-roles").isHidden(), "an editor is offered role management");
  check(await page.locator("[data-view=admin]").isVisible(), "the admin tab");
  await page.click("#logout");

  // A reader signs in: no upload for them, but the new knowledge base to ask.
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#key", process.env.ZHIKU_KEY);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  check((await page.inputValue("#chat-kb")) === "hr", "the knowledge base is offered");
  check(await page.locator("#drop").isHidden(), "a reader is offered the upload");

  // Ask by keyboard; the answer streams in and cites its source.
  await page.focus("#question");
  await page.keyboard.type("How many days of annual leave can be carried over?");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#messages li.assistant:not(.pending) .sources .cite", { timeout: 120000 });
  await page.screenshot({ path: `${shots}/1-answer.png`, fullPage: true });
  const sources = await page.locator("#messages .sources .cite").allTextContents();
  check(sources.some((s) => s.includes("leave.md")), `sources listed: ${sources}`);

  // The citation opens the passage, highlighted, with where it is.
  await page.locator("#messages .sources .cite").first().click();
  await page.waitForSelector("#passage[open]");
  const passage = await page.textContent("#passage-text");
  check(passage.includes("five days"), `passage shown: ${passage}`);
  check((await page.textContent("#passage-where")).includes("Leave"), "the passage's section is shown");
  await page.screenshot({ path: `${shots}/2-passage.png` });
  await page.keyboard.press("Escape");
  check(!(await page.isVisible("#passage")), "Escape closes the passage");

  // Rate the answer down with a correction; then it is in the history, and opens again.
  await page.click("#messages .rate button:nth-child(2)");
  await page.fill("#messages .rate textarea", "Five days; they expire at the end of March.");
  await page.click("#messages .rate button");
  await page.waitForFunction(() => document.querySelector("#messages .rate").textContent.includes("Thank you"));
  await page.click("#chat-clear");
  check((await page.locator("#messages li").count()) === 0, "a new conversation starts empty");
  const earlier = await page.locator("#history option").allTextContents();
  check(earlier.some((o) => o.includes("annual leave")), `history: ${earlier}`);
  await page.selectOption("#history", { index: 1 });
  await page.waitForSelector("#messages li.assistant .sources .cite");
  check((await page.textContent("#messages li.user")).includes("annual leave"), "the earlier question is shown again");

  // Search, then the interface in Chinese.
  await page.click("[data-view=search]");
  await page.fill("#query", "annual leave");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#hits li");
  check((await page.textContent("#hits li")).includes("leave.md"), "search finds the document");
  // The knowledge graph: an entity, its relation drawn and listed, a neighbour one click away.
  await page.click("[data-view=graph]");
  await page.fill("#entity", "workday");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#relations li");
  check((await page.textContent("#relations")).includes("People Team owns Workday"), `relations: ${await page.textContent("#relations")}`);
  check((await page.textContent("#relations")).includes("leave.md"), "each relation names its source");
  await page.screenshot({ path: `${shots}/5-graph.png`, fullPage: true });
  await page.click("#graph-canvas text.node:not(.center)");
  await page.waitForFunction(() => document.querySelector("#graph-status").textContent.startsWith("People Team"));
  await page.fill("#entity", "Nothing Like This");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#graph-status").textContent.includes("No entity"));
  check(await page.locator("#graph-canvas").isHidden(), "no drawing for an unknown entity");
  await page.click("[data-view=search]");
  await page.click("#lang");
  check((await page.textContent("[data-view=chat]")) === "问答", "the tabs speak Chinese");
  await page.screenshot({ path: `${shots}/3-search-zh.png`, fullPage: true });

  check(problems.length === 0, `console errors: ${problems}`);
  check(external.length === 0, `requests outside the server: ${external}`);

  // The widget, one script tag on an intranet page of another origin (served here, on
  // localhost: a page in the same address space, as an intranet's is).
  const pageServer = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html><body><h1>Intranet</h1><p>Welcome.</p>
      <script src="${url}/widget.js" data-kb="hr" data-key="${process.env.ZHIKU_KEY}"></script></body></html>`);
  });
  await new Promise((resolve) => pageServer.listen(Number(process.env.ZHIKU_PAGE_PORT), "127.0.0.1", resolve));
  const intranet = await browser.newPage({ locale: "en-US", viewport: { width: 1100, height: 800 } });
  const widgetErrors = [];
  intranet.on("pageerror", (e) => widgetErrors.push(String(e)));
  await intranet.goto(`http://localhost:${process.env.ZHIKU_PAGE_PORT}/`);
  await intranet.click(".launcher");
  await intranet.fill(".panel input", "How many days of annual leave can be carried over?");
  await intranet.keyboard.press("Enter");
  await intranet.waitForSelector(".panel .sources button", { timeout: 120000 });
  await intranet.click(".panel .sources button");
  await intranet.waitForSelector(".panel .passage");
  check((await intranet.textContent(".panel .passage")).includes("five days"), "the widget opens the cited passage");
  check((await intranet.textContent("h1")) === "Intranet", "the page is left as it was");
  await intranet.screenshot({ path: `${shots}/4-widget.png` });
  check(widgetErrors.length === 0, `widget errors: ${widgetErrors}`);
  pageServer.close();
} finally {
  await browser.close();
}
if (failures.length) {
  console.error("FAILED:\n" + failures.join("\n"));
  process.exit(1);
}
console.log("web app: all checks passed");
