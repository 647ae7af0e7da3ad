// Starts what the dashboard scenarios need, builds nothing: the debug
// binary (CARGO_TARGET_DIR/debug/malipo, default target/debug/malipo; run
// `cargo build -p malipo` first) with `serve --daraja-sim` on a free port
// and its own temporary data dir, the test SMTP sink (tests/smtp/sink.py,
// Python from .venv), and Debian's chromium through playwright-core.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");

export function binaryPath() {
  const target = process.env.CARGO_TARGET_DIR || path.join(repo, "target");
  return path.join(target, "debug", "malipo");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The SMTP sink: messages land as JSON files in a temporary directory. */
export async function startSink() {
  const dir = mkdtempSync(path.join(tmpdir(), "malipo-e2e-mail-"));
  const venv = path.join(repo, ".venv", "bin", "python");
  const python = process.env.MALIPO_TEST_PYTHON || (existsSync(venv) ? venv : "python3");
  const child = spawn(python, [path.join(repo, "tests", "smtp", "sink.py"), dir], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", resolve);
    child.once("exit", (code) => reject(new Error("SMTP sink exited " + code + " (python with aiosmtpd; run scripts/test once)")));
  });
  const port = Number(String(line).replace(/^port /, ""));
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages() {
      return readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .map((f) => JSON.parse(readFileSync(path.join(dir, f), "utf8")));
    },
    async waitFor(to, timeoutMs = 30000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        const m = this.messages().find((x) => x.rcpt_tos.includes(to));
        if (m) return m;
        await sleep(200);
      }
      throw new Error("no email to " + to);
    },
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The real binary on a free port with its own data dir. */
export async function startServer({ smtpUrl = "", env = {} } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run cargo build -p malipo first`);
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "malipo-e2e-data-"));
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ["serve", "--daraja-sim", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      ...process.env,
      RUST_LOG: "warn",
      MALIPO_PUBLIC_URL: base,
      MALIPO_SMTP_URL: smtpUrl,
      MALIPO_SMTP_FROM: "Malipo Test <mail@malipo.test>",
      MALIPO_JOB_INTERVAL_SECS: "1",
      MALIPO_EVENT_INTERVAL_MS: "200",
      MALIPO_DARAJA_SIM_DELAY_MS: "1500",
      ...env,
    },
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const end = Date.now() + 120000;
  for (;;) {
    if (child.exitCode !== null) throw new Error("malipo exited: " + stderr);
    try {
      const r = await fetch(base + "/health");
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error("malipo did not start: " + stderr);
    await sleep(250);
  }
  return {
    base,
    dataDir,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Makes a platform super-admin with `malipo bootstrap` (safe beside the running server). */
export function superAdmin(server, email, password = "super admin passphrase") {
  execFileSync(binaryPath(), ["bootstrap", "--email", email, "--data-dir", server.dataDir], {
    env: { ...process.env, RUST_LOG: "warn", MALIPO_BOOTSTRAP_PASSWORD: password },
    stdio: ["ignore", "ignore", "pipe"],
  });
  return { email, password };
}

/** Debian's chromium, headless, with a fresh profile; never downloads one. */
export async function startBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), "malipo-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** JSON calls to the API, as a third party (seeding data, checking). */
export function client(base) {
  return async function call(method, p, { token, apiKey, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.authorization = "Bearer " + token;
    if (apiKey) h["X-API-Key"] = apiKey;
    if (body !== undefined) h["content-type"] = "application/json";
    const r = await fetch(base + "/api/v1" + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, body: json };
  };
}

export const SANDBOX_CREDENTIALS = {
  consumer_key: "my-key",
  consumer_secret: "my-secret",
  shortcode: "174379",
  passkey: "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
  initiator_name: "testapi",
  initiator_password: "Safaricom999!*!",
  environment: "sandbox",
};

/** Registers an organization with M-Pesa set up on the emulator. */
export async function organization(call, name, email) {
  const reg = await call("POST", "/auth/register", {
    body: { email, password: "a long passphrase", full_name: name + " Owner", organization_name: name },
  });
  if (reg.status !== 201 && reg.status !== 200) throw new Error("register: " + JSON.stringify(reg.body));
  const token = reg.body.access_token;
  const cred = await call("PUT", "/mpesa/credentials", { token, body: SANDBOX_CREDENTIALS });
  if (cred.status !== 200) throw new Error("credentials: " + JSON.stringify(cred.body));
  return { token, email, password: "a long passphrase", tenant: reg.body.tenant, user: reg.body.user };
}
