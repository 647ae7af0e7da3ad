// The REST client: Bearer tokens kept for the tab (sessionStorage), one
// refresh through POST /api/v1/auth/refresh when the access token expired,
// the chosen store sent as X-Store-ID. Errors become ApiError with the
// API's code and message (never shown as raw JSON).

const KEY = "malipo.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    // The field an error names: the API quotes it as `field`.
    const m = /`([a-z_.]+)`/.exec(message || "");
    this.field = m ? m[1] : null;
  }
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

export function saveSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/** Keeps the tokens of a login, register, refresh or accept answer. */
export function signedIn(answer, extra = {}) {
  const old = session() || {};
  saveSession({
    ...old,
    ...extra,
    access: answer.access_token,
    refresh: answer.refresh_token,
    tenant_id: answer.tenant ? answer.tenant.id : old.tenant_id,
  });
}

let refreshing = null;

/** Trades the refresh token for new tokens once; answers whether it worked. */
export async function refreshTokens() {
  const s = session();
  if (!s || !s.refresh) return false;
  if (!refreshing) {
    refreshing = (async () => {
      const r = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: s.refresh }),
      });
      if (!r.ok) return false;
      signedIn(await r.json());
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Calls the API; `query` is an object of non-empty parameters. */
export async function api(method, path, { body, query, headers = {}, raw = false, retry = true } = {}) {
  const s = session();
  let url = "/api/v1" + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, v);
    }
    const text = q.toString();
    if (text) url += "?" + text;
  }
  const h = { ...headers };
  if (s && s.access) h.authorization = "Bearer " + s.access;
  if (s && s.store_id && !("X-Store-ID" in h)) h["X-Store-ID"] = s.store_id;
  if (h["X-Store-ID"] === null) delete h["X-Store-ID"];
  if (body !== undefined) h["content-type"] = "application/json";
  let r;
  try {
    r = await fetch(url, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "");
  }
  if (r.status === 401 && retry && s && s.refresh && !path.startsWith("/auth/")) {
    if (await refreshTokens()) return api(method, path, { body, query, headers, raw, retry: false });
    saveSession(null);
    window.dispatchEvent(new Event("malipo:signed-out"));
  }
  if (raw && r.ok) return r;
  let data = null;
  const type = r.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await r.json();
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(r.status, e.code || "http_" + r.status, e.message || "");
  }
  return data;
}

export function newKey() {
  return crypto.randomUUID();
}
