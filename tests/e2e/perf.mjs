// Measures, for docs/PERFORMANCE.md: the embedded dashboard's size, and the
// time to first render of the transactions page with 10,000 transactions
// (one real STK payment through the emulator, copied 10,000 times straight
// into the tenant's SQLite file with python's sqlite3). Prints; asserts nothing.
// Usage: node perf.mjs (after cargo build -p malipo).
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { startServer, startBrowser, client, organization, repo } from "./harness.mjs";

const assets = path.join(repo, "host", "assets", "dashboard");
const size = readdirSync(assets).reduce((n, f) => n + statSync(path.join(assets, f)).size, 0);
console.log(`embedded dashboard assets: ${readdirSync(assets).length} files, ${size} bytes`);

const server = await startServer();
const call = client(server.base);
const shop = await organization(call, "Perf Shop", "perf@shop.example");
const r = await call("POST", "/mpesa/stk-push", { token: shop.token, body: { phone_number: "0712345678", amount: 10 }, headers: { "Idempotency-Key": "perf-1" } });
if (r.status !== 201) throw new Error(JSON.stringify(r.body));
await new Promise((res) => setTimeout(res, 3000));
const file = path.join(server.dataDir, "tenants", shop.tenant.id + ".db");
execFileSync("python3", [
  "-c",
  `
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
cols = [r[1] for r in c.execute("PRAGMA table_info(mpesa_transactions)")]
def expr(col):
    if col == "id": return "printf('perf-%05d', n)"
    if col in ("checkout_request_id", "merchant_request_id"): return "printf('perf-%s-%05d', '" + col + "', n)"
    if col == "created_ms": return "created_ms - n * 60000"
    return col
sel = ", ".join(expr(x) for x in cols)
c.execute("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10000) "
          "INSERT INTO mpesa_transactions (" + ", ".join(cols) + ") SELECT " + sel + " FROM seq, (SELECT * FROM mpesa_transactions LIMIT 1)")
c.commit()
print(c.execute("SELECT count(*) FROM mpesa_transactions").fetchone()[0], "transactions")
`,
  file,
], { stdio: "inherit" });

const browser = await startBrowser();
const page = await browser.context.newPage();
await page.goto(server.base + "/");
await page.getByLabel("Email").fill(shop.email);
await page.getByLabel("Password").fill(shop.password);
await page.locator("#signin button[type=submit]").click();
await page.locator("nav.side").waitFor();
const times = [];
for (let i = 0; i < 5; i++) {
  await page.goto(server.base + "/#/overview");
  await page.locator("nav.side").waitFor();
  const start = Date.now();
  await page.goto(server.base + "/#/transactions");
  await page.reload();
  await page.locator("#tx-list tr[data-id]").first().waitFor({ timeout: 30000 });
  times.push(Date.now() - start);
}
const nav = await page.evaluate(() => {
  const n = performance.getEntriesByType("navigation")[0];
  const rows = document.querySelectorAll("#tx-list tr[data-id]").length;
  return { domContentLoaded: Math.round(n.domContentLoadedEventEnd), rows };
});
times.sort((a, b) => a - b);
console.log(`transactions page, 10,000 transactions: first 50 rows rendered in ${times.join(", ")} ms (median ${times[2]} ms); DOMContentLoaded ${nav.domContentLoaded} ms; rows ${nav.rows}`);
await browser.close();
await server.stop();
