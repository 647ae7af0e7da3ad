// The dashboard's shell: public pages (sign in, password reset, accepting
// an invitation), then the signed-in layout with the organization's
// branding, a language switch, the store choice and the pages (pages.js),
// routed by the URL's #fragment.
import { api, ApiError, session, saveSession, signedIn } from "./api.js";
import { t, configure, langOf, LANGUAGES, lang } from "./i18n.js";
import { PAGES } from "./pages.js";

/** Makes an element: h("p", {class: "x"}, "text", child). Never parses HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Words for an API error. */
export function errorText(e) {
  if (!(e instanceof ApiError)) return t("error.generic", { code: String(e && e.message) });
  if (e.code === "network") return t("error.network");
  if (e.message) return e.message.replace(/`/g, "");
  return t("error.generic", { code: e.code });
}

let fieldSeq = 0;
/** A labelled input with a place for its error. */
export function field(label, name, attrs = {}) {
  const id = "f-" + name.replace(/[^a-z0-9]/gi, "-") + "-" + ++fieldSeq;
  const control =
    attrs.options !== undefined
      ? h(
          "select",
          { id, name, "aria-describedby": id + "-err" },
          attrs.options.map(([value, text]) => h("option", { value, selected: String(value) === String(attrs.value ?? "") }, text)),
        )
      : attrs.textarea
        ? h("textarea", { id, name, rows: attrs.rows || 4, "aria-describedby": id + "-err" }, attrs.value || "")
        : h("input", { id, name, type: "text", "aria-describedby": id + "-err", ...attrs });
  return h("div", { class: "field" }, h("label", { for: id }, label), control, h("span", { class: "error", id: id + "-err", "data-error-for": name }));
}

/**
 * Runs a form's submit: disables it, clears errors, shows an API error in
 * words next to the field it names (or above the form), else `done`.
 */
export function onSubmit(form, action) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    form.querySelectorAll("[data-error-for]").forEach((s) => (s.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((s) => s.removeAttribute("aria-invalid"));
    const banner = form.querySelector(".form-banner");
    if (banner) banner.replaceChildren();
    if (button) button.disabled = true;
    try {
      await action(Object.fromEntries(new FormData(form).entries()));
    } catch (e) {
      showError(form, e);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

export function showError(form, e) {
  const text = errorText(e);
  const target = e instanceof ApiError && e.field && form.querySelector(`[data-error-for="${CSS.escape(e.field)}"]`);
  if (target) {
    target.textContent = text;
    const input = form.querySelector(`[name="${CSS.escape(e.field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  } else {
    let banner = form.querySelector(".form-banner");
    if (!banner) {
      banner = h("div", { class: "form-banner" });
      form.prepend(banner);
    }
    banner.replaceChildren(h("div", { class: "banner error", role: "alert" }, text));
  }
}

export function banner(kind, text) {
  return h("div", { class: "banner " + kind, role: kind === "error" ? "alert" : "status" }, text);
}

const ctx = { me: null, settings: {}, branding: {}, stores: [], bound: false };
export function context() {
  return ctx;
}

function preferredLang() {
  return localStorage.getItem("malipo.lang") || langOf(ctx.settings.locale);
}

function mount(...nodes) {
  const app = document.getElementById("app");
  app.replaceChildren(...nodes);
}

function publicPage(title, ...body) {
  document.title = title + " · Malipo";
  return h(
    "main",
    { id: "main", class: "center" },
    h("div", { class: "card" }, h("h1", {}, title), ...body),
    h("p", {}, languageSwitch()),
  );
}

function languageSwitch() {
  return h(
    "label",
    {},
    t("language") + " ",
    h(
      "select",
      {
        id: "lang-switch",
        onchange: (ev) => {
          localStorage.setItem("malipo.lang", ev.target.value);
          configure({ lang: ev.target.value });
          render();
        },
      },
      LANGUAGES.map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)),
    ),
  );
}

function signInPage() {
  const form = h(
    "form",
    { class: "stack", id: "signin" },
    field(t("signin.email"), "email", { type: "email", autocomplete: "username", required: true }),
    field(t("signin.password"), "password", { type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
  );
  onSubmit(form, async (v) => {
    const body = { email: v.email, password: v.password };
    let answer;
    try {
      answer = await api("POST", "/auth/login", { body });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) e.message = t("error.unauthorized");
      throw e;
    }
    const orgs = (answer.memberships || []).filter((m) => m.tenant && m.tenant.id);
    if (orgs.length > 1) return mount(chooseOrganizationPage(answer, orgs, body));
    signedIn(answer, { store_id: null });
    await start();
  });
  return publicPage(t("signin.title"), form, h("p", {}, h("a", { href: "#/forgot" }, t("signin.forgot"))));
}

/**
 * Someone in several organizations chooses one after signing in. The login
 * already made is for the first; another is one more login naming it (the
 * password stays in this closure, never stored).
 */
function chooseOrganizationPage(answer, orgs, credentials) {
  const said = h("div", { "aria-live": "polite" });
  const choose = (m) => async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try {
      const chosen = m.tenant.id === (answer.tenant && answer.tenant.id) ? answer : await api("POST", "/auth/login", { body: { ...credentials, tenant_id: m.tenant.id } });
      signedIn(chosen, { store_id: null });
      await start();
    } catch (e) {
      button.disabled = false;
      said.replaceChildren(banner("error", errorText(e)));
    }
  };
  return publicPage(
    t("signin.choose"),
    said,
    h(
      "ul",
      { class: "plain stack", id: "org-choice" },
      orgs.map((m) =>
        h("li", {}, h("button", { type: "button", class: "primary org", onclick: choose(m) }, m.tenant.name || m.tenant.id), " ",
          h("span", { class: "muted" }, (m.roles || []).map((r) => r.role_name).join(", "))),
      ),
    ),
  );
}

function forgotPage() {
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "stack" },
    field(t("signin.email"), "email", { type: "email", required: true }),
    h("button", { type: "submit", class: "primary" }, t("forgot.submit")),
  );
  onSubmit(form, async (v) => {
    await api("POST", "/auth/forgot-password", { body: { email: v.email } });
    out.replaceChildren(banner("ok", t("forgot.sent")));
  });
  return publicPage(t("forgot.title"), out, form, h("p", {}, h("a", { href: "/" }, t("back.signin"))));
}

function tokenFromUrl() {
  return new URLSearchParams(location.search).get("token");
}

function resetPage() {
  const token = tokenFromUrl();
  if (!token) return publicPage(t("reset.title"), banner("error", t("token.missing")));
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "stack" },
    field(t("reset.password"), "password", { type: "password", autocomplete: "new-password", required: true }),
    h("button", { type: "submit", class: "primary" }, t("reset.submit")),
  );
  onSubmit(form, async (v) => {
    await api("POST", "/auth/reset-password", { body: { token, password: v.password } });
    form.remove();
    out.replaceChildren(banner("ok", t("reset.done")));
  });
  return publicPage(t("reset.title"), out, form, h("p", {}, h("a", { href: "/" }, t("back.signin"))));
}

function acceptPage() {
  const token = tokenFromUrl();
  if (!token) return publicPage(t("invite.title"), banner("error", t("token.missing")));
  const form = h(
    "form",
    { class: "stack", id: "accept" },
    field(t("invite.name"), "full_name", { autocomplete: "name" }),
    field(t("invite.password"), "password", { type: "password", autocomplete: "new-password", required: true }),
    h("button", { type: "submit", class: "primary" }, t("invite.submit")),
  );
  onSubmit(form, async (v) => {
    const body = { token, password: v.password };
    if (v.full_name) body.full_name = v.full_name;
    const answer = await api("POST", "/invitations/accept", { body });
    if (answer && answer.access_token) {
      saveSession(null);
      signedIn(answer, { store_id: null });
      history.replaceState(null, "", "/#/overview");
      await start();
    } else {
      history.replaceState(null, "", "/");
      render();
    }
  });
  return publicPage(t("invite.title"), form);
}

/** Colours, name, logo and words of the organization on the shell. */
export function applyBranding(b) {
  const root = document.documentElement.style;
  const ok = (c) => typeof c === "string" && /^#[0-9a-fA-F]{6}$/.test(c);
  if (ok(b.primary_colour)) {
    root.setProperty("--primary", b.primary_colour);
    root.setProperty("--on-primary", readableOn(b.primary_colour));
  } else {
    root.removeProperty("--primary");
    root.removeProperty("--on-primary");
  }
  if (ok(b.secondary_colour)) root.setProperty("--secondary", b.secondary_colour);
  else root.removeProperty("--secondary");
  configure({ terms: b.terminology || {} });
}

/** Black or white, whichever reads better on `hex`. */
export function readableOn(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lin = (c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

export function orgName() {
  return ctx.branding.display_name || (ctx.me && ctx.me.tenant && ctx.me.tenant.name) || "Malipo";
}

export function can(permission) {
  return !!(ctx.me && ctx.me.permissions && ctx.me.permissions.includes(permission));
}

/** Loads who the caller is and how their organization looks. */
export async function start() {
  try {
    ctx.me = await api("GET", "/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      saveSession(null);
      render();
      return;
    }
    throw e;
  }
  const optional = (p) => p.catch(() => null);
  // Someone whose roles are all store-bound acts in a store: choose their
  // first one, and ask again what they may do there.
  const s = session() || {};
  const bound = ctx.me.roles.length > 0 && ctx.me.roles.every((r) => r.store_id);
  if (bound && !s.store_id) {
    saveSession({ ...s, store_id: ctx.me.roles[0].store_id });
    ctx.me = await api("GET", "/me");
  }
  const [settings, branding, stores] = await Promise.all([
    optional(api("GET", "/tenant/settings")),
    optional(api("GET", "/tenant/branding")),
    optional(api("GET", "/stores", bound ? {} : { headers: { "X-Store-ID": null } })),
  ]);
  ctx.settings = (settings && settings.settings) || {};
  ctx.branding = branding || {};
  ctx.stores = (stores && stores.stores) || [];
  ctx.bound = bound;
  configure({
    locale: ctx.settings.locale,
    timezone: ctx.settings.timezone,
    currencyDisplay: ctx.settings.currency_display,
  });
  applyBranding(ctx.branding);
  configure({ lang: preferredLang() });
  if (!location.hash || location.hash === "#/" || location.hash === "#/forgot") location.hash = "#/overview";
  render();
}

const NAV = [
  ["overview", "nav.overview", null],
  ["transactions", "nav.transactions", "payments.read"],
  ["collect", "nav.collect", "payments.create"],
  ["payouts", "nav.payouts", "payouts.create"],
  ["approvals", "nav.approvals", "approvals.read"],
  ["reports", "nav.reports", "reports.read"],
  ["billing", "nav.billing", "billing.read"],
  ["team", "nav.team", "users.read"],
  ["keys", "nav.keys", "api_keys.manage"],
  ["branding", "nav.branding", "settings.manage"],
  ["settings", "nav.settings", "tenant.read"],
  ["webhooks", "nav.webhooks", "webhooks.manage"],
  ["audit", "nav.audit", "audit.read"],
];

function shell(route) {
  const me = ctx.me;
  const items = NAV.filter(([, , perm]) => !perm || can(perm));
  if (me.user && me.user.is_super_admin) items.push(["admin", "nav.admin", null]);
  const nav = h(
    "nav",
    { class: "side", id: "side-nav", "aria-label": t("menu") },
    h(
      "ul",
      {},
      items.map(([id, key]) => h("li", {}, h("a", { href: "#/" + id, "aria-current": route === id ? "page" : null }, t(key)))),
    ),
  );
  const s = session() || {};
  const storeSelect = h(
    "select",
    {
      id: "store-switch",
      onchange: (ev) => {
        saveSession({ ...session(), store_id: ev.target.value || null });
        start();
      },
    },
    ctx.bound ? null : h("option", { value: "" }, t("store.all")),
    ctx.stores.map((st) => h("option", { value: st.id, selected: st.id === s.store_id }, st.name)),
  );
  const logo = ctx.branding.logo_url && /^https:\/\//.test(ctx.branding.logo_url) ? h("img", { src: ctx.branding.logo_url, alt: "" }) : null;
  const header = h(
    "header",
    { class: "top" },
    h(
      "button",
      {
        class: "menu-toggle link",
        type: "button",
        "aria-controls": "side-nav",
        "aria-expanded": "false",
        onclick: (ev) => {
          const open = nav.classList.toggle("open");
          ev.currentTarget.setAttribute("aria-expanded", String(open));
        },
      },
      t("menu"),
    ),
    h("div", { class: "brand", id: "brand-name" }, logo, orgName()),
    h("label", {}, t("store.choose") + " ", storeSelect),
    (me.memberships || []).length > 1 ? h("button", { type: "button", class: "link", id: "org-switch", onclick: signOut }, t("signin.switch")) : null,
    languageSwitch(),
    h(
      "button",
      {
        type: "button",
        class: "link",
        id: "signout",
        onclick: signOut,
      },
      t("signout"),
    ),
  );
  const main = h("main", { id: "main", tabindex: "-1" }, h("p", { class: "muted" }, t("loading")));
  return { header, nav, main };
}

/** Ends the session (and so leads back to signing in, where an organization is chosen). */
async function signOut() {
  try {
    await api("POST", "/auth/logout", { body: {} });
  } catch {
    /* signed out either way */
  }
  saveSession(null);
  ctx.me = null;
  location.hash = "";
  render();
}

let renderSeq = 0;
let cleanups = [];

export async function render() {
  const seq = ++renderSeq;
  for (const f of cleanups.splice(0)) f();
  const path = location.pathname;
  if (path === "/reset-password") return mount(resetPage());
  if (path === "/accept-invitation") return mount(acceptPage());
  if (!session() || !session().access) {
    configure({ lang: localStorage.getItem("malipo.lang") || "en" });
    return mount(location.hash === "#/forgot" ? forgotPage() : signInPage());
  }
  if (!ctx.me) return start();
  const route = (location.hash.replace(/^#\//, "").split("?")[0] || "overview").split("/")[0];
  const page = PAGES[route] || PAGES.overview;
  const { header, nav, main } = shell(route);
  mount(header, h("div", { class: "layout" }, nav, main));
  const titleKey = (NAV.find(([id]) => id === route) || [null, route === "admin" ? "nav.admin" : "nav.overview"])[1];
  document.title = t(titleKey) + " · " + orgName();
  try {
    const content = await page({ h, t, main, route, hash: location.hash, onCleanup: (f) => cleanups.push(f) });
    if (seq !== renderSeq) return;
    main.replaceChildren(...[].concat(content));
  } catch (e) {
    if (seq !== renderSeq) return;
    const text = e instanceof ApiError && e.status === 403 ? t("forbidden") + " " + errorText(e) : errorText(e);
    main.replaceChildren(h("h1", {}, t(titleKey)), banner("error", text));
  }
}

window.addEventListener("hashchange", () => render());
window.addEventListener("malipo:signed-out", () => {
  ctx.me = null;
  render();
});

export function refreshContext() {
  return start();
}

render();
