// The dashboard's end-to-end scenarios: headless Chromium against the real
// binary (`serve --daraja-sim`), its Daraja emulator and the SMTP sink.
// Run with `npm test` here after `cargo build -p malipo` (scripts/test does both);
// MALIPO_E2E_SCREENSHOTS=1 also refreshes docs/screenshots/ (desktop and phone).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { startServer, startSink, startBrowser, client, organization, superAdmin, repo } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const SHOTS = path.join(repo, "docs", "screenshots");

let server, sink, browser, call, shop, other;

before(async () => {
  sink = await startSink();
  server = await startServer({ smtpUrl: sink.url });
  call = client(server.base);
  browser = await startBrowser();
  shop = await organization(call, "Duka Letu", "owner@duka.example");
  other = await organization(call, "Other Shop", "owner@other.example");
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (sink) sink.stop();
});

async function signIn(page, who) {
  await page.goto(server.base + "/");
  await page.getByLabel(/^Email|^Barua pepe/).fill(who.email);
  await page.getByLabel(/^Password|^Nenosiri/).fill(who.password);
  await page.locator("#signin button[type=submit]").click();
  await page.locator("nav.side").waitFor();
}

async function freshPage() {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

async function go(page, route) {
  await page.evaluate((r) => (location.hash = r), route);
  await page.locator("main h1").first().waitFor();
  await page.waitForFunction(() => !document.querySelector("main > p.muted") || document.querySelector("main > p.muted").textContent.indexOf("…") < 0);
}

test("the dashboard is served at / with a strict CSP and the API still answers JSON", async () => {
  const r = await fetch(server.base + "/");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/html/);
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  for (const p of ["/accept-invitation?token=x", "/reset-password?token=x", "/dashboard/assets/app.js"]) {
    const a = await fetch(server.base + p);
    assert.equal(a.status, 200, p);
  }
  const js = await fetch(server.base + "/dashboard/assets/app.js");
  assert.match(js.headers.get("content-type"), /javascript/);
  const again = await fetch(server.base + "/dashboard/assets/app.js", { headers: { "if-none-match": js.headers.get("etag") } });
  assert.equal(again.status, 304);
  const missing = await fetch(server.base + "/api/v1/nope");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const asset404 = await fetch(server.base + "/dashboard/assets/nope.js");
  assert.equal(asset404.status, 404);
  assert.equal((await asset404.json()).error.code, "not_found");
  const post = await fetch(server.base + "/", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal((await post.json()).error.code, "method_not_allowed");
  // The emailed links' pages do not leak their token to other sites.
  assert.equal(r.headers.get("referrer-policy"), "no-referrer");
});

test("sign in, a wrong password in words, sign out", async () => {
  const page = await freshPage();
  await page.goto(server.base + "/");
  await page.getByLabel("Email").fill(shop.email);
  await page.getByLabel("Password").fill("not the passphrase");
  await page.locator("#signin button[type=submit]").click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.textContent(), /email or password/i);
  assert.doesNotMatch(await page.content(), /"error":\{/);
  await page.getByLabel("Password").fill(shop.password);
  await page.locator("#signin button[type=submit]").click();
  await page.locator("#brand-name").waitFor();
  assert.match(await page.locator("#brand-name").textContent(), /Duka Letu/);
  await page.locator("#signout").click();
  await page.locator("#signin").waitFor();
  await page.close();
});

test("an STK payment turns completed without reloading", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/collect");
  await page.evaluate(() => (window.__noReload = true));
  await page.getByLabel("Customer's phone").fill("0712345678");
  await page.getByLabel("Amount (KES)").fill("25");
  await page.locator("#stk-form button[type=submit]").click();
  await page.locator("#stk-result .status").waitFor();
  await page.locator("#stk-result .status.completed").waitFor({ timeout: 20000 });
  // And in the transactions list, a pending payment turns completed in place.
  // It is the organization's event stream that turns it, not polling: the
  // page says it is live, and asks for no single transaction meanwhile.
  await go(page, "#/transactions");
  await page.locator('#tx-live[data-live="on"]').waitFor({ timeout: 10000 });
  const r = await call("POST", "/mpesa/stk-push", { token: shop.token, body: { phone_number: "0712345679", amount: 30 }, headers: { "Idempotency-Key": "e2e-live-1" } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await page.getByRole("button", { name: "Filter" }).click();
  const row = page.locator(`tr[data-id="${r.body.transaction.id}"]`);
  await row.locator(".status").waitFor();
  const polls = [];
  const watch = (req) => req.url().includes("/api/v1/mpesa/transactions/" + r.body.transaction.id) && polls.push(req.url());
  page.on("request", watch);
  await row.locator(".status.completed").waitFor({ timeout: 20000 });
  page.off("request", watch);
  assert.deepEqual(polls, [], "the row was settled by the event stream");
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
  await page.close();
});

test("a completed payment is reversed from its page and turns reversed", async () => {
  const paid = await call("POST", "/mpesa/stk-push", { token: shop.token, body: { phone_number: "0712000555", amount: 40 }, headers: { "Idempotency-Key": "e2e-reverse-1" } });
  assert.equal(paid.status, 201, JSON.stringify(paid.body));
  const id = paid.body.transaction.id;
  const state = async (txn) => (await call("GET", "/mpesa/transactions/" + txn, { token: shop.token })).body.transaction;
  for (let i = 0; i < 100 && (await state(id)).status !== "completed"; i++) await new Promise((r) => setTimeout(r, 200));
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/transactions/" + id);
  await page.getByLabel("Reason for the reversal").fill("Customer returned the goods");
  await page.getByRole("button", { name: "Reverse this payment" }).click();
  await page.getByRole("link", { name: "Follow the reversal" }).click();
  await page.waitForFunction((original) => location.hash.startsWith("#/transactions/") && !location.hash.endsWith(original), id);
  const reversalId = await page.evaluate(() => decodeURIComponent(location.hash.split("/")[2]));
  const reversal = await state(reversalId);
  assert.equal(reversal.kind, "reversal", JSON.stringify(reversal));
  assert.equal(reversal.original_transaction_id, id);
  for (let i = 0; i < 100 && (await state(id)).status !== "reversed"; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal((await state(id)).status, "reversed");
  await go(page, "#/transactions/" + id);
  await page.locator("main .status.reversed").first().waitFor();
  await page.close();
});

test("a payout CSV is previewed, sent and paid; an assistant's payout is approved in the queue", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/payouts");
  await page.locator("#payout-file").setInputFiles({
    name: "payouts.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("phone_number,amount,remarks\n0712000001,100,Salary one\n0712000002,150,Salary two\n"),
  });
  await page.locator("#payout-total").waitFor();
  assert.match(await page.locator("#payout-total").textContent(), /2 recipients/);
  assert.match(await page.locator("#payout-total").textContent(), /250\.00/);
  await page.locator("#payout-send").click();
  await page.locator("#payout-result .banner.ok").waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#payout-result td .status.completed").length === 2, null, { timeout: 30000 });

  // An AI assistant (MCP, API key) asks for a payout: it waits for approval.
  const key = await call("POST", "/api-keys", { token: shop.token, body: { name: "assistant", permissions: ["mcp.use", "payouts.create", "payments.read"] } });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const mcp = await fetch(server.base + "/mcp", {
    method: "POST",
    headers: {
      authorization: "Bearer " + key.body.key,
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      "MCP-Protocol-Version": "2026-07-28",
      "Mcp-Method": "tools/call",
      "Mcp-Name": "mpesa_bulk_payment",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: {
        name: "mpesa_bulk_payment",
        arguments: { items: [{ phone_number: "0712000003", amount: 120, remarks: "Refund" }], command_id: "BusinessPayment", idempotency_key: "assistant-1" },
        _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
      },
    }),
  });
  const text = await mcp.text();
  assert.match(text, /pending_approval/, text);
  await go(page, "#/approvals");
  const row = page.locator("tbody tr").first();
  await row.getByRole("button", { name: "Approve" }).click();
  await row.locator(".status").waitFor();
  assert.match(await row.locator(".status").textContent(), /executed|approved/);
  // The approved payout is paid.
  await page.waitForFunction(
    async (token) => {
      const r = await fetch("/api/v1/mpesa/transactions?kind=b2c&phone_number=0712000003", { headers: { authorization: "Bearer " + token } });
      const j = await r.json();
      return j.transactions && j.transactions.some((x) => x.status === "completed");
    },
    shop.token,
    { timeout: 30000, polling: 500 },
  );
  await go(page, "#/transactions?kind=b2c&phone_number=0712000003");
  await page.locator("tbody .status.completed").first().waitFor();
  await page.close();
});

test("an invited member accepts through the emailed link and sees only what the role and store allow", async () => {
  const storeB = await call("POST", "/stores", { token: shop.token, body: { name: "Westlands" } });
  assert.equal(storeB.status, 201, JSON.stringify(storeB.body));
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/team");
  await page.getByLabel("Email", { exact: true }).fill("cashier@duka.example");
  await page.locator("#invite-form select[name=role_id]").selectOption({ label: "Member" });
  await page.locator("#invite-form select[name=store_id]").selectOption({ label: "Westlands" });
  await page.locator("#invite-form button[type=submit]").click();
  await page.locator("#invite-form .banner.ok").waitFor();
  await page.close();

  const mail = await sink.waitFor("cashier@duka.example");
  const link = /(http:\/\/127\.0\.0\.1:\d+\/accept-invitation\?token=[A-Za-z0-9_\-]+)/.exec(mail.text || mail.html);
  assert.ok(link, "the email carries the accept link: " + (mail.text || "").slice(0, 400));
  const member = await freshPage();
  await member.goto(link[1]);
  await member.getByLabel("Your name").fill("Cashier Wanjiku");
  await member.getByLabel("Choose a password").fill("another long passphrase");
  await member.locator("#accept button[type=submit]").click();
  await member.locator("nav.side").waitFor();
  const nav = await member.locator("nav.side").textContent();
  assert.match(nav, /Transactions/);
  for (const hidden of ["Team", "API keys", "Branding", "Audit log", "Approvals"]) assert.ok(!nav.includes(hidden), `a Member does not see ${hidden}: ${nav}`);
  const stores = await member.locator("#store-switch option").allTextContents();
  assert.ok(stores.includes("Westlands"), stores.join());
  assert.ok(!stores.includes("Main store"), "only the assigned store: " + stores.join());
  // A page the role does not allow says so in words.
  await member.evaluate(() => (location.hash = "#/team"));
  await member.locator("main .banner.error").waitFor();
  assert.match(await member.locator("main .banner.error").textContent(), /do not have access/);
  await member.close();
});

/** Serious or critical axe-core violations on the page as it stands. */
async function axeViolations(page) {
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
  });
}

test("a role is made and edited in the team page, given to a member for one store and taken away", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/team");
  const form = page.locator("#role-form");
  await form.getByLabel("Role name").fill("Cashier");
  await form.getByLabel("payments.read", { exact: true }).check();
  await form.getByLabel("payments.create", { exact: true }).check();
  await form.locator("button[type=submit]").click();
  const cashier = page.locator("details.role", { hasText: "Cashier" });
  await cashier.waitFor();
  const roleOf = async () => (await call("GET", "/roles", { token: shop.token })).body.roles.find((r) => r.name === "Cashier");
  assert.deepEqual((await roleOf()).permissions.sort(), ["payments.create", "payments.read"]);

  // The same name again is refused in words, next to the form, never as JSON.
  await form.getByLabel("Role name").fill("cashier");
  await form.locator("button[type=submit]").click();
  const refusal = form.locator("[role=alert], [data-error-for]:not(:empty)").first();
  await refusal.waitFor();
  const words = await refusal.textContent();
  assert.ok(words.length > 5 && !words.includes("{"), words);

  // Editing: one permission taken away, saved, and the API agrees.
  await cashier.locator("summary").click();
  await cashier.getByLabel("payments.create", { exact: true }).uncheck();
  await cashier.locator("button[type=submit]").click();
  await cashier.locator(".banner.ok").waitFor();
  assert.deepEqual((await roleOf()).permissions, ["payments.read"]);
  assert.deepEqual(await axeViolations(page), [], "the open role editor");

  // Given to the invited member for Westlands only, then taken away.
  const row = page.locator('tr[data-user="cashier@duka.example"]');
  await row.locator("select[name=role_id]").selectOption({ label: "Cashier" });
  await row.locator("select[name=store_id]").selectOption({ label: "Westlands" });
  await row.locator(".assign-role button[type=submit]").click();
  await page.locator('tr[data-user="cashier@duka.example"] li', { hasText: "Cashier · Westlands" }).waitFor();
  const users = (await call("GET", "/users", { token: shop.token })).body.users;
  const member = users.find((u) => u.email === "cashier@duka.example");
  const held = async () => (await call("GET", `/users/${member.id}/roles`, { token: shop.token })).body.assignments;
  const given = (await held()).find((a) => a.role_name === "Cashier");
  assert.ok(given && given.store_id, "given for one store: " + JSON.stringify(await held()));
  await page.getByRole("button", { name: "Take Cashier from Cashier Wanjiku" }).click();
  await page.locator('tr[data-user="cashier@duka.example"] li', { hasText: "Cashier ·" }).waitFor({ state: "detached" });
  assert.ok(!(await held()).some((a) => a.role_name === "Cashier"), "taken away");
  await page.close();
});

test("someone in two organizations chooses one at sign-in and can switch", async () => {
  // Other Shop invites the cashier Duka Letu already has; they accept with their password.
  const roles = await call("GET", "/roles", { token: other.token });
  const manager = roles.body.roles.find((r) => r.name === "Manager");
  const invited = await call("POST", "/invitations", { token: other.token, body: { email: "cashier@duka.example", role_id: manager.id } });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  let link = null;
  for (let i = 0; i < 150 && !link; i++) {
    const mail = sink.messages().find((m) => m.rcpt_tos.includes("cashier@duka.example") && /Other Shop/.test(m.text || ""));
    link = mail && /accept-invitation\?token=([A-Za-z0-9_\-]+)/.exec(mail.text);
    if (!link) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(link, "the second invitation arrived");
  const accepted = await call("POST", "/invitations/accept", { body: { token: link[1], password: "another long passphrase" } });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));

  const page = await freshPage();
  await page.goto(server.base + "/");
  await page.getByLabel("Email").fill("cashier@duka.example");
  await page.getByLabel("Password").fill("another long passphrase");
  await page.locator("#signin button[type=submit]").click();
  await page.locator("#org-choice").waitFor();
  const names = await page.locator("#org-choice button").allTextContents();
  assert.deepEqual(names.sort(), ["Duka Letu", "Other Shop"], names.join());
  assert.deepEqual(await axeViolations(page), [], "the organization choice");
  await page.getByRole("button", { name: "Other Shop" }).click();
  await page.locator("nav.side").waitFor();
  assert.match(await page.locator("#brand-name").textContent(), /Other Shop/);
  const me = await page.evaluate(async () => (await fetch("/api/v1/me", { headers: { authorization: "Bearer " + JSON.parse(sessionStorage.getItem("malipo.session")).access } })).json());
  assert.equal(me.tenant.name, "Other Shop", JSON.stringify(me.tenant));
  // Switching leads back to the choice, and the other organization is one click away.
  await page.locator("#org-switch").click();
  await page.getByLabel("Email").fill("cashier@duka.example");
  await page.getByLabel("Password").fill("another long passphrase");
  await page.locator("#signin button[type=submit]").click();
  await page.getByRole("button", { name: "Duka Letu" }).click();
  await page.locator("nav.side").waitFor();
  const again = await page.evaluate(async () => (await fetch("/api/v1/me", { headers: { authorization: "Bearer " + JSON.parse(sessionStorage.getItem("malipo.session")).access } })).json());
  assert.equal(again.tenant.name, "Duka Letu");
  await page.close();
});

test("the super-admin sees every organization with plan, usage, size and activity, and suspends and reactivates one", async () => {
  const third = await organization(call, "Third Shop", "owner@third.example");
  const pushed = await call("POST", "/mpesa/stk-push", { token: third.token, body: { phone_number: "0712000444", amount: 12 }, headers: { "Idempotency-Key": "third-1" } });
  assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
  const admin = superAdmin(server, "root@platform.example");
  const page = await freshPage();
  await signIn(page, admin);
  await go(page, "#/admin");
  const row = page.locator(`tr[data-tenant="${third.tenant.id}"]`);
  await row.waitFor();
  const text = await row.textContent();
  assert.match(text, /Third Shop/);
  assert.match(await row.locator("td.usage").textContent(), /\d+ transactions · \d+ API calls/);
  assert.match(text, /\d+\.\d MB/, "database size: " + text);
  assert.deepEqual(await axeViolations(page), [], "the super-admin page");

  await row.getByRole("button", { name: "Suspend" }).click();
  await page.locator(`tr[data-tenant="${third.tenant.id}"] .status.suspended`).waitFor();
  const refused = await call("GET", "/me", { token: third.token });
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  await page.locator(`tr[data-tenant="${third.tenant.id}"]`).getByRole("button", { name: "Reactivate" }).click();
  await page.locator(`tr[data-tenant="${third.tenant.id}"] .status.active`).waitFor();
  assert.equal((await call("GET", "/me", { token: third.token })).status, 200);
  // An organization's owner is not the platform: the page is not theirs.
  const owner = await freshPage();
  await signIn(owner, shop);
  assert.ok(!(await owner.locator("nav.side").textContent()).includes("Super-admin"));
  await owner.close();
  await page.close();
});

test("the audit log filters by operation, channel and outcome, pages, and shows the chain's verification", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/audit");
  await page.locator("main .banner.ok", { hasText: "intact" }).waitFor();
  const filters = page.locator("#audit-filters");
  await filters.getByLabel("Operation").fill("roles.*");
  await filters.locator("button[type=submit]").click();
  await page.waitForFunction(() => location.hash.includes("operation=roles.*"));
  await page.locator("main tbody tr").first().waitFor();
  const ops = await page.locator("main tbody tr td:nth-child(2)").allTextContents();
  assert.ok(ops.length > 0 && ops.every((o) => o.startsWith("roles.")), ops.join());
  // The assistant's payout came over MCP: the channel filter finds it and only MCP rows.
  await go(page, "#/audit?channel=mcp");
  await page.locator("main tbody tr").first().waitFor();
  const channels = await page.locator("main tbody tr td:nth-child(4)").allTextContents();
  assert.ok(channels.length > 0 && channels.every((c) => c === "mcp"), channels.join());
  await go(page, "#/audit?outcome=failure&operation=roles.create");
  const outcomes = await page.locator("main tbody tr td:nth-child(5)").allTextContents();
  assert.ok(outcomes.length > 0 && outcomes.every((o) => o.startsWith("failure")), outcomes.join());
  // More than a page: an "older" link follows the cursor.
  await go(page, "#/audit?limit=3");
  const first = await page.locator("main tbody tr").allTextContents();
  assert.equal(first.length, 3);
  await page.locator("#audit-next").click();
  await page.waitForFunction(() => location.hash.includes("cursor="));
  await page.waitForFunction((old) => {
    const row = document.querySelector("main tbody tr");
    return row && row.textContent !== old;
  }, first[0]);
  const second = await page.locator("main tbody tr").allTextContents();
  assert.ok(second.length > 0 && !second.some((row) => first.includes(row)), "the next page holds other entries");
  await page.close();
});

test("reports show money in and money out apart, by kind, as charts and a table", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/reports?group_by=kind");
  await page.locator("main table").waitFor();
  const cells = async (kind) => page.locator("main tbody tr", { has: page.locator("td", { hasText: new RegExp("^" + kind + "$") }) }).locator("td").allTextContents();
  const stk = await cells("stk");
  const b2c = await cells("b2c");
  const amount = (text) => Number(text.replace(/[^0-9.]/g, ""));
  // Columns: kind, count, completed, rate, in, out, net.
  assert.ok(amount(stk[4]) > 0 && amount(stk[5]) === 0, "payments are money in: " + stk.join(" | "));
  assert.ok(amount(b2c[5]) > 0 && amount(b2c[4]) === 0, "payouts are money out: " + b2c.join(" | "));
  const groups = await page.locator("main tbody tr").count() - 1;
  assert.equal(await page.locator('svg.chart rect[data-series="in"]').count(), groups);
  assert.equal(await page.locator('svg.chart rect[data-series="out"]').count(), groups);
  assert.equal(await page.locator('svg.chart rect[data-series="rate"]').count(), groups);
  await page.close();
});

test("an email template that does not render is refused in words; a good one is saved; the default comes back", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/settings");
  const panel = page.locator("details.template").first();
  const name = await panel.getAttribute("data-template");
  await panel.locator("summary").click();
  const subject = panel.getByLabel("Subject");
  await subject.waitFor();
  await subject.fill("Asante {{ data.amount");
  await panel.locator("button[type=submit]").click();
  const refusal = panel.locator("[role=alert], [data-error-for]:not(:empty)").first();
  await refusal.waitFor();
  assert.ok(!(await refusal.textContent()).includes('{"error"'), await refusal.textContent());
  const stored = async () => (await call("GET", "/notification-templates/" + name, { token: shop.token })).body;
  assert.equal((await stored()).overridden, false, "nothing stored");

  await subject.fill("Asante: {{ data.amount }}");
  await panel.locator("button[type=submit]").click();
  await panel.locator(".banner.ok").waitFor();
  assert.equal((await stored()).subject, "Asante: {{ data.amount }}");
  assert.equal((await stored()).overridden, true);
  assert.deepEqual(await axeViolations(page), [], "the open template editor");

  // The C2B URLs are registered with Safaricom (here its emulator) from the same page.
  await page.getByRole("button", { name: "Register the C2B URLs with Safaricom" }).click();
  await page.locator("#c2b-form .banner.ok", { hasText: "174379" }).waitFor();

  await panel.getByRole("button", { name: "Restore the default" }).click();
  await panel.locator(".banner.ok", { hasText: "default" }).waitFor();
  assert.equal((await stored()).overridden, false);
  assert.notEqual(await subject.inputValue(), "Asante: {{ data.amount }}");
  await page.close();
});

test("an approval is rejected in the queue with a reason the API keeps", async () => {
  const key = await call("POST", "/api-keys", { token: shop.token, body: { name: "payroll bot", permissions: ["payouts.create", "payments.read"] } });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const asked = await call("POST", "/mpesa/b2c/bulk", {
    token: key.body.key,
    body: { command_id: "BusinessPayment", items: [{ phone_number: "0712000009", amount: 75, remarks: "Bonus" }] },
  });
  assert.equal(asked.status, 202, JSON.stringify(asked.body));
  const id = asked.body.approval_id;
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/approvals");
  const row = page.locator("tbody tr", { hasText: /712000009/ }).first();
  await row.getByLabel("Reason").fill("Not on this month's payroll");
  await row.getByRole("button", { name: "Reject" }).click();
  await row.locator(".status.rejected").waitFor();
  const kept = await call("GET", "/approvals/" + id, { token: shop.token });
  assert.equal(kept.body.approval.status, "rejected", JSON.stringify(kept.body));
  assert.equal(kept.body.approval.reason, "Not on this month's payroll", JSON.stringify(kept.body));
  await page.close();
});

test("a password reset through the emailed link", async () => {
  const page = await freshPage();
  await page.goto(server.base + "/");
  await page.getByRole("link", { name: "Forgot your password?" }).click();
  await page.getByLabel("Email").fill(other.email);
  await page.getByRole("button", { name: "Email me a reset link" }).click();
  await page.locator(".banner.ok").waitFor();
  const mail = await sink.waitFor(other.email);
  const link = /(http:\/\/127\.0\.0\.1:\d+\/reset-password\?token=[A-Za-z0-9_\-]+)/.exec(mail.text || mail.html);
  assert.ok(link, "reset link in the email");
  await page.goto(link[1]);
  await page.getByLabel("New password").fill("a brand new passphrase");
  await page.getByRole("button", { name: "Save the new password" }).click();
  await page.locator(".banner.ok").waitFor();
  other.password = "a brand new passphrase";
  const login = await call("POST", "/auth/login", { body: { email: other.email, password: other.password } });
  assert.equal(login.status, 200);
  other.token = login.body.access_token;
  await page.close();
});

test("branding changes are previewed live and applied to the shell", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await go(page, "#/branding");
  await page.getByLabel("Display name").fill("Duka Bora");
  await page.locator("#branding-form input[name=primary_colour]").fill("#7a1fa2");
  await page.locator("#branding-form input[name='term.stores']").fill("branches");
  assert.equal(await page.locator("#preview-name").textContent(), "Duka Bora");
  assert.equal(await page.locator("#branding-preview .preview-top").evaluate((e) => getComputedStyle(e).backgroundColor), "rgb(122, 31, 162)");
  await page.getByRole("button", { name: "Save the branding" }).click();
  await page.waitForFunction(() => document.querySelector("#brand-name") && document.querySelector("#brand-name").textContent.includes("Duka Bora"));
  assert.equal(await page.locator("header.top").evaluate((e) => getComputedStyle(e).backgroundColor), "rgb(122, 31, 162)");
  assert.match(await page.locator("#store-switch option").first().textContent(), /branches/);
  await page.close();
});

test("switching to Swahili, and the organization's locale as the default", async () => {
  const page = await freshPage();
  await signIn(page, shop);
  await page.locator("#lang-switch").selectOption("sw");
  await page.waitForFunction(() => document.querySelector("nav.side") && document.querySelector("nav.side").textContent.includes("Miamala"));
  assert.equal(await page.evaluate(() => document.documentElement.lang), "sw");
  // Every English phrase has its Swahili one.
  const missing = await page.evaluate(async () => (await import("/dashboard/assets/i18n.js")).untranslated());
  assert.deepEqual(missing, [], "phrases without Swahili");
  await page.locator("#lang-switch").selectOption("en");
  await page.evaluate(() => localStorage.removeItem("malipo.lang"));
  await page.close();
  // An organization whose locale is sw-KE opens in Swahili.
  const set = await call("PATCH", "/tenant/settings", { token: other.token, body: { locale: "sw-KE" } });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  const p2 = await freshPage();
  await signIn(p2, other);
  await p2.waitForFunction(() => document.querySelector("nav.side").textContent.includes("Miamala"));
  await p2.evaluate(() => localStorage.removeItem("malipo.lang"));
  await p2.close();
});

test("a second organization never sees the first's data", async () => {
  const page = await freshPage();
  await signIn(page, other);
  await page.locator("#lang-switch").selectOption("en");
  await go(page, "#/transactions");
  await page.locator("#tx-list p, #tx-list table").first().waitFor();
  assert.equal(await page.locator("#tx-list tr[data-id]").count(), 0);
  const theirs = await call("GET", "/mpesa/transactions?limit=1", { token: shop.token });
  const id = theirs.body.transactions[0].id;
  await go(page, "#/transactions/" + id);
  await page.locator("main .banner.error").waitFor();
  const body = await page.locator("main").textContent();
  assert.ok(!body.includes("0712"), body);
  await go(page, "#/team");
  assert.ok(!(await page.locator("main").textContent()).includes("owner@duka.example"));
  await page.evaluate(() => localStorage.removeItem("malipo.lang"));
  await page.close();
});

const MAIN_PAGES = ["overview", "transactions", "collect", "payouts", "approvals", "reports", "billing", "team", "keys", "branding", "settings", "webhooks", "audit"];

test("axe-core finds no serious or critical violation on the main pages; screenshots", async () => {
  if (process.env.MALIPO_E2E_SCREENSHOTS === "1") mkdirSync(SHOTS, { recursive: true });
  const page = await freshPage();
  await signIn(page, shop);
  const problems = [];
  const check = async (name) => {
    await page.evaluate(AXE);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ["violations"] });
      return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(" | ")}`);
    });
    for (const v of result) problems.push(`${name}: ${v}`);
  };
  for (const route of MAIN_PAGES) {
    await go(page, "#/" + route);
    await page.waitForTimeout(300);
    await check(route);
    if (process.env.MALIPO_E2E_SCREENSHOTS === "1") {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.screenshot({ path: path.join(SHOTS, `${route}-desktop.png`), fullPage: false });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(SHOTS, `${route}-phone.png`), fullPage: false });
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  }
  // The public pages too.
  const pub = await freshPage();
  for (const p of ["/", "/reset-password?token=x", "/accept-invitation?token=x"]) {
    await pub.goto(server.base + p);
    await pub.locator("main h1").waitFor();
    await pub.evaluate(AXE);
    const r = await pub.evaluate(async () => (await axe.run(document)).violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id));
    for (const v of r) problems.push(`${p}: ${v}`);
  }
  if (process.env.MALIPO_E2E_SCREENSHOTS === "1") {
    await pub.setViewportSize({ width: 390, height: 844 });
    await pub.goto(server.base + "/");
    await pub.locator("main h1").waitFor();
    await pub.screenshot({ path: path.join(SHOTS, "signin-phone.png") });
  }
  await pub.close();
  await page.close();
  assert.deepEqual(problems, []);
});
