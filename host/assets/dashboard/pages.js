// The signed-in pages. Each takes {h, t, main, hash, onCleanup} and
// answers the nodes of its <main>; every call goes through the REST API.
import { api, ApiError, newKey, session } from "./api.js";
import { subscribe, connected } from "./live.js";
import { t, money, when, statusText } from "./i18n.js";
import { h, field, onSubmit, banner, errorText, context, can, applyBranding, readableOn, refreshContext, render, showError } from "./app.js";
import { act, status, table } from "./widgets.js";
import { team } from "./access.js";
import { templates } from "./templates.js";

const STATUSES = ["pending", "completed", "failed", "cancelled", "timeout", "reversed"];
const KINDS = ["stk", "b2c", "c2b", "reversal"];

function params() {
  const q = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q).entries());
}

function storeName(id) {
  if (!id) return "";
  const s = context().stores.find((x) => x.id === id);
  return s ? s.name : id.slice(0, 8);
}

function downloadText(name, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  // Cells that a spreadsheet would run as a formula are quoted with a '.
  const safe = /^[=+\-@\t\r]/.test(s) ? "'" + s : s;
  return /[",\n\r]/.test(safe) ? '"' + safe.replace(/"/g, '""') + '"' : safe;
}

// ---------------------------------------------------------------- overview
async function overview() {
  const me = context().me;
  const out = [h("h1", {}, t("overview.title")), h("p", {}, me.user.full_name + " · " + me.user.email + " · " + me.roles.map((r) => r.role_name).join(", "))];
  try {
    const s = await api("GET", "/onboarding/status");
    out.push(
      h("section", { class: "card", "aria-labelledby": "checklist-h" }, h("h2", { id: "checklist-h" }, t("overview.checklist") + ` (${s.done}/${s.total})`),
        h("ul", { class: "checklist" }, s.steps.map((st) => h("li", {}, (st.done ? "✔ " : "○ ") + st.title + " — " + (st.done ? t("overview.done") : t("overview.todo"))))),
      ),
    );
  } catch {
    /* the checklist needs tenant.read; without it the page is just the greeting */
  }
  return out;
}

// ------------------------------------------------------------ transactions
async function transactions({ onCleanup }) {
  const p = params();
  const filters = {
    status: p.status || "",
    kind: p.kind || "",
    from: p.from || "",
    to: p.to || "",
    store_id: p.store_id || "",
    phone_number: p.phone_number || "",
  };
  const stores = context().stores;
  const form = h(
    "form",
    { class: "inline card", id: "tx-filters", role: "search" },
    field(t("tx.status"), "status", { options: [["", t("tx.any")], ...STATUSES.map((s) => [s, statusText(s)])], value: filters.status }),
    field(t("tx.kind"), "kind", { options: [["", t("tx.any")], ...KINDS.map((s) => [s, s])], value: filters.kind }),
    field(t("tx.from"), "from", { type: "date", value: filters.from }),
    field(t("tx.to"), "to", { type: "date", value: filters.to }),
    session().store_id ? null : field(t("tx.store"), "store_id", { options: [["", t("tx.any")], ...stores.map((s) => [s.id, s.name])], value: filters.store_id }),
    field(t("tx.phone"), "phone_number", { type: "tel", value: filters.phone_number }),
    h("button", { type: "submit", class: "primary" }, t("tx.filter")),
    h("button", { type: "button", id: "tx-export" }, t("tx.export")),
  );
  const list = h("div", { id: "tx-list", "aria-live": "polite" });
  const progress = h("p", { class: "muted", "aria-live": "polite" });
  const cursors = [null];
  let page = 0;

  const load = async () => {
    list.replaceChildren(h("p", { class: "muted" }, t("loading")));
    try {
      const r = await api("GET", "/mpesa/transactions", { query: { ...filters, limit: 50, cursor: cursors[page] } });
      cursors[page + 1] = r.next_cursor;
      const rows = r.transactions.map((x) =>
        h(
          "tr",
          { "data-id": x.id },
          h("td", {}, h("a", { href: "#/transactions/" + x.id }, when(x.created_at))),
          h("td", {}, x.kind),
          h("td", {}, x.phone_number || ""),
          h("td", { class: "num" }, money(x.amount, x.currency)),
          h("td", { class: "tx-status" }, status(x.status)),
          h("td", {}, x.receipt || ""),
          h("td", {}, storeName(x.store_id)),
        ),
      );
      list.replaceChildren(
        rows.length
          ? table([t("tx.created"), t("tx.kind"), t("tx.phone"), [t("tx.amount"), "num"], t("tx.status"), t("tx.receipt"), t("tx.store")], rows)
          : h("p", {}, t("tx.none")),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", disabled: page === 0, onclick: () => { page--; load(); } }, t("tx.prev")),
          h("span", {}, t("tx.page", { n: page + 1 })),
          h("button", { type: "button", id: "tx-next", disabled: !r.next_cursor, onclick: () => { page++; load(); } }, t("tx.next")),
        ),
      );
    } catch (e) {
      list.replaceChildren(banner("error", errorText(e)));
    }
  };
  onSubmit(form, async (v) => {
    Object.assign(filters, { status: v.status, kind: v.kind, from: v.from, to: v.to, store_id: v.store_id || "", phone_number: v.phone_number.trim() });
    const q = new URLSearchParams(Object.entries(filters).filter(([, x]) => x)).toString();
    history.replaceState(null, "", "#/transactions" + (q ? "?" + q : ""));
    cursors.length = 1;
    page = 0;
    try {
      await api("GET", "/mpesa/transactions", { query: { ...filters, limit: 1 } });
    } catch (e) {
      throw e;
    }
    await load();
  });
  form.querySelector("#tx-export").addEventListener("click", async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    const cols = ["id", "created_at", "completed_at", "kind", "status", "phone_number", "amount", "currency", "receipt", "store_id", "account_reference", "result_code", "result_desc"];
    const lines = [cols.join(",")];
    let cursor = null;
    try {
      do {
        const r = await api("GET", "/mpesa/transactions", { query: { ...filters, limit: 100, cursor } });
        for (const x of r.transactions) lines.push(cols.map((c) => csvCell(x[c])).join(","));
        progress.textContent = t("tx.exporting", { n: lines.length - 1 });
        cursor = r.next_cursor;
      } while (cursor);
      downloadText("transactions.csv", lines.join("\r\n") + "\r\n");
    } catch (e) {
      progress.textContent = errorText(e);
    } finally {
      button.disabled = false;
    }
  });
  // Rows still pending turn final in place, without reloading: from the
  // organization's event stream, or by asking while the stream is down.
  const liveNote = h("p", { class: "muted live", id: "tx-live", "aria-live": "polite" });
  const showLive = () => {
    liveNote.textContent = connected() ? t("tx.live") : t("tx.polling");
    liveNote.dataset.live = connected() ? "on" : "off";
  };
  const settle = (tr, x) => {
    if (!x.status || x.status === "pending") return;
    tr.querySelector(".tx-status").replaceChildren(status(x.status));
    tr.children[5].textContent = x.receipt || "";
  };
  const pendingRows = () => [...list.querySelectorAll("tr[data-id]")].filter((tr) => tr.querySelector(".status.pending"));
  const ask = async () => {
    for (const tr of pendingRows().slice(0, 10)) {
      try {
        const r = await api("GET", "/mpesa/transactions/" + tr.dataset.id);
        settle(tr, r.transaction || r);
      } catch {
        /* next tick */
      }
    }
  };
  onCleanup(
    subscribe((ev) => {
      showLive();
      if (ev.name === "stream.open") return ask();
      const d = ev.data || {};
      if (!d.transaction_id) return;
      const tr = list.querySelector(`tr[data-id="${CSS.escape(d.transaction_id)}"]`);
      if (tr) settle(tr, d);
    }),
  );
  const timer = setInterval(() => {
    showLive();
    if (!connected()) ask();
  }, 1500);
  onCleanup(() => clearInterval(timer));
  showLive();
  load();
  return [h("h1", {}, t("tx.title")), form, progress, liveNote, list];
}

async function transactionDetail(id, { onCleanup }) {
  const box = h("div", { "aria-live": "polite" });
  const draw = (x) => {
    const steps = [h("li", {}, t("tx.requested") + " — " + when(x.created_at))];
    if (x.checkout_request_id || x.conversation_id) steps.push(h("li", {}, t("tx.daraja") + " (" + (x.checkout_request_id || x.conversation_id) + ")"));
    if (x.result_desc) steps.push(h("li", {}, t("tx.result", { desc: x.result_desc })));
    if (x.status !== "pending") steps.push(h("li", {}, t("tx.final", { status: statusText(x.status) }) + (x.completed_at ? " — " + when(x.completed_at) : "")));
    const dl = h("dl", { class: "grid" },
      [["tx.amount", money(x.amount, x.currency)], ["tx.phone", x.phone_number || ""], ["tx.kind", x.kind], ["tx.receipt", x.receipt || "—"], ["tx.store", storeName(x.store_id) || "—"]].map(([k, v]) => h("div", {}, h("dt", {}, t(k)), h("dd", {}, v))),
    );
    const parts = [h("p", {}, status(x.status)), dl, h("h2", {}, t("tx.timeline")), h("ol", { class: "timeline" }, steps)];
    if (x.kind === "stk" && x.status === "pending" && can("payments.read")) {
      parts.push(h("button", { type: "button", onclick: async () => { try { await api("POST", `/mpesa/transactions/${x.id}/query`, { body: {} }); } catch (e) { box.prepend(banner("error", errorText(e))); } } }, t("tx.query")));
    }
    if (x.status === "completed" && x.receipt && x.kind !== "reversal" && can("payments.reverse")) {
      const rev = h("form", { class: "stack" }, field(t("tx.reverse.remarks"), "remarks", { required: true, minlength: 2 }), h("button", { type: "submit", class: "danger" }, t("tx.reverse")));
      // One key for this form: sending it again (after a lost answer)
      // answers the same reversal instead of reversing twice.
      const key = newKey();
      onSubmit(rev, async (v) => {
        const r = await api("POST", "/mpesa/reversals", { body: { transaction_id: x.id, remarks: v.remarks }, headers: { "Idempotency-Key": key } });
        const made = (r && r.transaction) || {};
        if (made.status === "failed") {
          rev.replaceChildren(banner("error", t("tx.reverse.refused", { why: made.result_desc || made.result_code || "" })));
        } else if (r && r.approval_id) {
          rev.replaceChildren(banner("ok", t("tx.reverse.approval")));
        } else {
          rev.replaceChildren(banner("ok", t("tx.reverse.sent")), made.id ? h("p", {}, h("a", { href: "#/transactions/" + made.id }, t("tx.reverse.follow"))) : null);
        }
      });
      parts.push(h("h2", {}, t("tx.reverse")), rev);
    }
    box.replaceChildren(...parts);
  };
  const r = await api("GET", "/mpesa/transactions/" + encodeURIComponent(id));
  let x = r.transaction || r;
  draw(x);
  // While pending: read it again when the event stream says it changed (or
  // it reconnected), and every 1.5 s only while the stream is down.
  const again = async () => {
    if (x.status !== "pending") return;
    try {
      const r2 = await api("GET", "/mpesa/transactions/" + encodeURIComponent(id));
      x = r2.transaction || r2;
      if (x.status !== "pending") draw(x);
    } catch {
      /* next event or tick */
    }
  };
  onCleanup(subscribe((ev) => (ev.name === "stream.open" || (ev.data && ev.data.transaction_id === x.id)) && again()));
  const timer = setInterval(() => !connected() && again(), 1500);
  onCleanup(() => clearInterval(timer));
  return [h("p", {}, h("a", { href: "#/transactions" }, "← " + t("tx.title"))), h("h1", {}, t("tx.detail")), box];
}

// ----------------------------------------------------------------- collect
async function collect({ onCleanup }) {
  const result = h("div", { id: "stk-result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "stack card", id: "stk-form" },
    field(t("collect.phone"), "phone_number", { type: "tel", required: true, autocomplete: "off", placeholder: "0712345678" }),
    field(t("collect.amount"), "amount", { type: "number", required: true, min: 1, max: 250000, step: 1 }),
    field(t("collect.reference"), "account_reference", { maxlength: 12 }),
    field(t("collect.description"), "description", { maxlength: 13 }),
    h("button", { type: "submit", class: "primary" }, t("collect.submit")),
  );
  let timer = null;
  let again = null;
  onCleanup(() => timer && clearInterval(timer));
  // The result turns final from the event stream; polling only while it is down.
  onCleanup(subscribe((ev) => again && again(ev)));
  onSubmit(form, async (v) => {
    const body = { phone_number: v.phone_number.trim(), amount: Number(v.amount) };
    if (v.account_reference) body.account_reference = v.account_reference;
    if (v.description) body.description = v.description;
    const r = await api("POST", "/mpesa/stk-push", { body, headers: { "Idempotency-Key": newKey() } });
    let x = r.transaction || r;
    const draw = () =>
      result.replaceChildren(
        h("div", { class: "card" },
          h("h2", {}, t("collect.status")),
          h("p", {}, status(x.status), " ", money(x.amount, x.currency), " · ", x.phone_number, x.receipt ? " · " + x.receipt : ""),
          x.status === "pending" ? h("p", { class: "muted" }, t("collect.waiting")) : x.result_desc ? h("p", {}, x.result_desc) : null,
          h("p", {}, h("a", { href: "#/transactions/" + x.id }, t("tx.timeline"))),
        ),
      );
    draw();
    const read = async () => {
      if (x.status !== "pending") return;
      try {
        const r2 = await api("GET", "/mpesa/transactions/" + x.id);
        x = r2.transaction || r2;
        draw();
      } catch {
        /* next event or tick */
      }
    };
    again = (ev) => (ev.name === "stream.open" || (ev.data && ev.data.transaction_id === x.id)) && read();
    if (timer) clearInterval(timer);
    timer = setInterval(() => !connected() && read(), 1000);
  });
  return [h("h1", {}, t("collect.title")), form, result];
}

// ----------------------------------------------------------------- payouts
export function parsePayoutCsv(text) {
  const rows = [];
  const errors = [];
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l);
  if (!lines.length) return { rows, errors: ["empty"] };
  const head = lines[0].toLowerCase().split(",").map((x) => x.trim().replace(/^"|"$/g, ""));
  const hasHeader = head.includes("phone_number") || head.includes("phone");
  const ip = hasHeader ? Math.max(head.indexOf("phone_number"), head.indexOf("phone")) : 0;
  const ia = hasHeader ? head.indexOf("amount") : 1;
  const ir = hasHeader ? head.indexOf("remarks") : 2;
  lines.slice(hasHeader ? 1 : 0).forEach((line, n) => {
    const cells = line.split(",").map((x) => x.trim().replace(/^"|"$/g, ""));
    const phone = cells[ip] || "";
    const amount = cells[ia] || "";
    const remarks = ir >= 0 ? cells[ir] || "" : "";
    const lineNo = n + (hasHeader ? 2 : 1);
    if (!/^(\+?254|0)?[17]\d{8}$/.test(phone.replace(/\s/g, ""))) errors.push(`line ${lineNo}: phone_number "${phone}"`);
    else if (!/^\d+$/.test(amount) || Number(amount) < 10 || Number(amount) > 250000) errors.push(`line ${lineNo}: amount "${amount}" (10 to 250000)`);
    else rows.push(remarks ? { phone_number: phone.replace(/\s/g, ""), amount: Number(amount), remarks } : { phone_number: phone.replace(/\s/g, ""), amount: Number(amount) });
  });
  return { rows, errors };
}

async function payouts({ onCleanup }) {
  const preview = h("div", { id: "payout-preview", "aria-live": "polite" });
  const result = h("div", { id: "payout-result", "aria-live": "polite" });
  let parsed = null;
  const file = h("input", { type: "file", id: "payout-file", name: "file", accept: ".csv,text/csv" });
  const form = h(
    "form",
    { class: "stack card", id: "payout-form" },
    h("p", {}, t("payouts.help")),
    h("div", { class: "field" }, h("label", { for: "payout-file" }, t("payouts.file")), file),
    field(t("payouts.command"), "command_id", { options: [["BusinessPayment", "BusinessPayment"], ["SalaryPayment", "SalaryPayment"], ["PromotionPayment", "PromotionPayment"]], value: "BusinessPayment" }),
    preview,
    h("button", { type: "submit", class: "primary", id: "payout-send", disabled: true }, t("payouts.send")),
  );
  file.addEventListener("change", async () => {
    const f = file.files[0];
    parsed = f ? parsePayoutCsv(await f.text()) : null;
    const send = form.querySelector("#payout-send");
    if (!parsed) return preview.replaceChildren();
    const total = parsed.rows.reduce((a, r) => a + r.amount, 0);
    preview.replaceChildren(
      h("h2", {}, t("payouts.preview")),
      h("p", { id: "payout-total" }, t("payouts.total", { n: parsed.rows.length, amount: money(total) })),
      parsed.errors.length ? h("div", { class: "banner error", role: "alert" }, t("payouts.invalid"), h("ul", {}, parsed.errors.map((e) => h("li", {}, e)))) : null,
      table([t("tx.phone"), [t("tx.amount"), "num"], "remarks"], parsed.rows.map((r) => h("tr", {}, h("td", {}, r.phone_number), h("td", { class: "num" }, money(r.amount)), h("td", {}, r.remarks || "")))),
    );
    send.disabled = !!parsed.errors.length || !parsed.rows.length;
  });
  let timer = null;
  onCleanup(() => timer && clearInterval(timer));
  onSubmit(form, async (v) => {
    if (!parsed || parsed.errors.length || !parsed.rows.length) return;
    const r = await api("POST", "/mpesa/b2c/bulk", { body: { command_id: v.command_id, items: parsed.rows }, headers: { "Idempotency-Key": newKey() } });
    const norm = (x) => ({ ...(x.batch || x), transactions: x.items || x.transactions || [] });
    const batch = norm(r);
    const draw = (b) => {
      const items = b.transactions || [];
      result.replaceChildren(
        banner("ok", t("payouts.sent")),
        h("p", {}, t("payouts.batch") + " " + (b.id || ""), " ", b.status ? status(b.status) : null),
        items.length ? table([t("tx.phone"), [t("tx.amount"), "num"], t("tx.status")], items.map((x) => h("tr", {}, h("td", {}, x.phone_number), h("td", { class: "num" }, money(x.amount)), h("td", {}, status(x.status))))) : null,
      );
    };
    draw(batch);
    form.reset();
    preview.replaceChildren();
    const id = batch.id || batch.batch_id;
    if (id) {
      timer = setInterval(async () => {
        try {
          const b = await api("GET", "/mpesa/b2c/batches/" + id);
          const nb = norm(b);
          draw(nb);
          if (nb.transactions.length && nb.transactions.every((x) => x.status !== "pending")) clearInterval(timer);
        } catch {
          /* next tick */
        }
      }, 1500);
    }
  });
  return [h("h1", {}, t("payouts.title")), form, result];
}

// --------------------------------------------------------------- approvals
async function approvals() {
  const p = params();
  const which = p.status || "pending";
  const r = await api("GET", "/approvals", { query: { status: which === "all" ? "" : which } });
  const list = r.approvals || [];
  const rows = list.map((a) => {
    const cell = h("td", {});
    if (a.status === "pending" && can("approvals.approve")) {
      const decide = async (verb, button) => {
        button.disabled = true;
        try {
          const body = {};
          if (verb === "reject") {
            const reason = (cell.querySelector("[name=reason]") || {}).value || "";
            if (reason.trim()) body.reason = reason.trim();
          }
          const out = await api("POST", `/approvals/${a.id}/${verb}`, { body });
          const st = (out.approval && out.approval.status) || out.status || (verb === "approve" ? "approved" : "rejected");
          cell.replaceChildren(status(st));
        } catch (e) {
          cell.append(h("span", { class: "error", role: "alert" }, " " + errorText(e)));
          button.disabled = false;
        }
      };
      cell.append(
        h("button", { type: "button", class: "primary", onclick: (ev) => decide("approve", ev.currentTarget) }, t("approvals.approve")),
        " ",
        h("button", { type: "button", class: "danger", onclick: (ev) => decide("reject", ev.currentTarget) }, t("approvals.reject")),
        h("label", { class: "field" }, t("approvals.reason"), h("input", { name: "reason", maxlength: 500 })),
      );
    } else cell.append(status(a.status));
    const items = (a.input && Array.isArray(a.input.items) ? a.input.items : []).slice(0, 5);
    const what = h("td", { class: "wrap" }, a.summary || a.operation || "", items.length ? h("ul", {}, items.map((i) => h("li", {}, `${i.phone_number}: ${money(i.amount)}`))) : null, a.error ? h("p", { class: "error" }, a.error) : null, a.reason ? h("p", { class: "muted" }, t("approvals.reason") + ": " + a.reason) : null);
    return h("tr", { "data-id": a.id }, h("td", {}, when(a.created_at)), what, h("td", {}, (a.requested_by || "").slice(0, 8) + (a.channel ? " (" + a.channel + ")" : "")), cell);
  });
  return [
    h("h1", {}, t("approvals.title")),
    h("p", {}, h("a", { href: "#/approvals?status=pending", "aria-current": which === "pending" ? "true" : null }, t("approvals.pending")), " · ", h("a", { href: "#/approvals?status=all", "aria-current": which === "all" ? "true" : null }, t("approvals.all"))),
    rows.length ? table([t("tx.created"), t("approvals.what"), t("approvals.who"), ""], rows) : h("p", {}, t("approvals.none")),
  ];
}

// ----------------------------------------------------------------- reports
/**
 * An SVG bar chart: for each group one bar per series, side by side. Each
 * bar carries its value in a <title>; the table under it has the figures.
 */
function barChart(groups, series, label, format) {
  const W = 640;
  const H = 200;
  const max = Math.max(1, ...groups.flatMap((g) => series.map((s) => s.value(g))));
  const slot = groups.length ? Math.min(80, (W - 40) / groups.length) : 0;
  const bw = Math.max(2, (slot - 8) / series.length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 40}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const el = (name, attrs) => {
    const node = document.createElementNS(svg.namespaceURI, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    return node;
  };
  groups.forEach((g, i) => {
    series.forEach((s, j) => {
      const value = s.value(g);
      const hgt = Math.round((value / max) * H);
      const rect = el("rect", { x: 30 + i * slot + j * bw, y: H - hgt + 10, width: bw, height: hgt, fill: s.colour, "data-series": s.name });
      const title = document.createElementNS(svg.namespaceURI, "title");
      title.textContent = `${g.key} · ${s.label}: ${format(value)}`;
      rect.append(title);
      svg.append(rect);
    });
    const text = el("text", { x: 30 + i * slot + (slot - 8) / 2, y: H + 28, "text-anchor": "middle", "font-size": "11", fill: "#1b1f24" });
    text.textContent = String(g.key).slice(0, 10);
    svg.append(text);
  });
  const legend = h("p", { class: "legend" }, series.map((s) => h("span", {}, h("span", { class: "swatch" }), " " + s.label + " ")));
  legend.querySelectorAll(".swatch").forEach((sw, i) => sw.style.setProperty("background", series[i].colour));
  return h("figure", { class: "chart" }, svg, h("figcaption", {}, label), series.length > 1 ? legend : null);
}

async function reports() {
  const p = params();
  const q = { from: p.from || "", to: p.to || "", group_by: p.group_by || "day" };
  const form = h(
    "form",
    { class: "inline card" },
    field(t("tx.from"), "from", { type: "date", value: q.from }),
    field(t("tx.to"), "to", { type: "date", value: q.to }),
    field(t("reports.group"), "group_by", { options: [["day", t("reports.day")], ["store", t("tx.store")], ["kind", t("reports.kind")]], value: q.group_by }),
    h("button", { type: "submit", class: "primary" }, t("reports.show")),
  );
  onSubmit(form, async (v) => {
    await api("GET", "/mpesa/reports", { query: v });
    location.hash = "#/reports?" + new URLSearchParams(Object.entries(v).filter(([, x]) => x)).toString();
  });
  const r = await api("GET", "/mpesa/reports", { query: q });
  const name = (g) => (q.group_by === "store" ? storeName(g.key) || g.key : g.key);
  const moneyIn = (g) => (g.money_in ? g.money_in.amount : 0);
  const moneyOut = (g) => (g.money_out ? g.money_out.amount : 0);
  const pct = (x) => Math.round(x * 100) + "%";
  const line = (label, g, head) =>
    h("tr", {}, head ? h("th", { scope: "row" }, label) : h("td", {}, label), h("td", { class: "num" }, g.count), h("td", { class: "num" }, g.completed), h("td", { class: "num" }, pct(g.success_rate)),
      h("td", { class: "num" }, money(moneyIn(g))), h("td", { class: "num" }, money(moneyOut(g))), h("td", { class: "num" }, money(g.net_amount ?? moneyIn(g) - moneyOut(g))));
  const groups = r.groups.map((g) => ({ ...g, key: name(g) }));
  const css = getComputedStyle(document.documentElement);
  const colour = (v, fallback) => css.getPropertyValue(v).trim() || fallback;
  return [
    h("h1", {}, t("reports.title")),
    form,
    h(
      "div",
      { class: "grid charts" },
      h("div", { class: "card" }, barChart(groups, [
        { name: "in", label: t("reports.in"), colour: colour("--primary", "#0a7e3c"), value: moneyIn },
        { name: "out", label: t("reports.out"), colour: colour("--secondary", "#134e4a"), value: moneyOut },
      ], t("reports.money"), money)),
      h("div", { class: "card" }, barChart(groups, [{ name: "rate", label: t("reports.rate"), colour: colour("--primary", "#0a7e3c"), value: (g) => g.success_rate }], t("reports.rate"), pct)),
    ),
    table([t("reports.group"), [t("reports.count"), "num"], [t("reports.completed"), "num"], [t("reports.rate"), "num"], [t("reports.in"), "num"], [t("reports.out"), "num"], [t("reports.net"), "num"]], [
      ...r.groups.map((g) => line(name(g), g, false)),
      line("Σ", r.totals, true),
    ]),
  ];
}

// ----------------------------------------------------------------- billing
async function billing() {
  const [usage, sub, inv] = await Promise.all([api("GET", "/usage").catch(() => null), api("GET", "/subscription").catch(() => null), api("GET", "/invoices").catch(() => null)]);
  const out = [h("h1", {}, t("billing.title"))];
  if (sub) {
    const s = sub.subscription || sub;
    out.push(h("div", { class: "card" }, h("h2", {}, t("billing.plan")), h("p", {}, (s.plan_name || (s.plan && s.plan.name) || s.plan_id || "") + " ", s.status ? status(s.status) : null, s.current_period_end ? " → " + when(s.current_period_end) : "")));
  }
  if (usage) {
    out.push(
      h("div", { class: "card" }, h("h2", {}, t("billing.usage") + " (" + usage.period + ")"),
        Object.entries(usage.metrics).map(([k, m]) => {
          const pct = Math.min(100, Math.round(m.percent || 0));
          return h("div", { class: "field" }, h("span", { id: "usage-" + k }, `${k}: ${m.used} / ${m.limit ?? "∞"}`),
            h("div", { class: "bar", role: "progressbar", "aria-labelledby": "usage-" + k, "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 }, h("span", { class: "w" + pct })));
        }),
      ),
    );
  }
  if (inv) {
    const list = inv.invoices || [];
    out.push(h("h2", {}, t("billing.invoices")));
    out.push(
      list.length
        ? table(["#", [t("tx.amount"), "num"], t("tx.status"), t("tx.created"), ""], list.map((i) => {
            const cell = h("td", {});
            if (i.status !== "paid" && can("billing.manage")) {
              const f = h("form", { class: "inline" }, field(t("billing.payphone"), "phone_number", { type: "tel", required: true }), h("button", { type: "submit" }, t("billing.pay")));
              onSubmit(f, async (v) => {
                await api("POST", `/invoices/${i.id}/pay`, { body: { phone_number: v.phone_number } });
                f.replaceChildren(banner("ok", t("billing.paid")));
              });
              cell.append(f);
            }
            return h("tr", {}, h("td", {}, i.number || i.id.slice(0, 8)), h("td", { class: "num" }, money(i.amount_kes ?? i.amount)), h("td", {}, status(i.status)), h("td", {}, when(i.issued_at || i.created_at)), cell);
          }))
        : h("p", { class: "muted" }, "—"),
    );
  }
  return out;
}

// -------------------------------------------------------------------- keys
async function keys() {
  const r = await api("GET", "/api-keys");
  const perms = context().me.permissions;
  const secret = h("div", { "aria-live": "polite" });
  const f = h(
    "form",
    { class: "stack card", id: "key-form" },
    field(t("keys.name"), "name", { required: true }),
    h("fieldset", {}, h("legend", {}, t("keys.perms")), perms.map((p, i) => h("div", {}, h("input", { type: "checkbox", name: "perm", value: p, id: "perm-" + i }), " ", h("label", { for: "perm-" + i }, p)))),
    h("span", { class: "error", "data-error-for": "permissions" }),
    field(t("keys.cap_call"), "max_amount_per_call", { type: "number", min: 1 }),
    field(t("keys.cap_day"), "max_amount_per_day", { type: "number", min: 1 }),
    field(t("keys.tools"), "allowed_tools", {}),
    field(t("keys.approval"), "approval_required", { options: [["", t("keys.approval_default")], ["true", t("keys.approval_yes")], ["false", t("keys.approval_no")]] }),
    h("button", { type: "submit", class: "primary" }, t("keys.create")),
  );
  onSubmit(f, async (v) => {
    const body = { name: v.name, permissions: [...f.querySelectorAll("[name=perm]:checked")].map((c) => c.value) };
    if (v.max_amount_per_call) body.max_amount_per_call = Number(v.max_amount_per_call);
    if (v.max_amount_per_day) body.max_amount_per_day = Number(v.max_amount_per_day);
    if (v.allowed_tools) body.allowed_tools = v.allowed_tools.split(",").map((x) => x.trim()).filter((x) => x);
    if (v.approval_required) body.approval_required = v.approval_required === "true";
    const k = await api("POST", "/api-keys", { body });
    secret.replaceChildren(h("div", { class: "card" }, h("p", {}, t("keys.secret")), h("p", { class: "secret", id: "key-secret" }, k.key)));
  });
  const list = r.api_keys || r.keys || [];
  return [
    h("h1", {}, t("keys.title")),
    secret,
    list.length
      ? table([t("keys.name"), t("keys.perms"), t("keys.limits"), t("tx.created"), ""], list.map((k) => h("tr", {}, h("td", {}, k.name), h("td", { class: "wrap" }, (k.permissions || []).join(", ")), h("td", { class: "wrap" }, keyLimits(k)), h("td", {}, when(k.created_at)), h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => { await api("DELETE", "/api-keys/" + k.id); render(); } }, t("keys.revoke"))))))
      : h("p", {}, t("keys.none")),
    f,
  ];
}

/** What bounds a key besides its permissions, in words. */
function keyLimits(k) {
  const parts = [];
  if (k.max_amount_per_call) parts.push(t("keys.cap_call_is", { amount: money(k.max_amount_per_call) }));
  if (k.max_amount_per_day) parts.push(t("keys.cap_day_is", { amount: money(k.max_amount_per_day) }));
  if (k.allowed_tools && k.allowed_tools.length) parts.push(t("keys.tools_are", { tools: k.allowed_tools.join(", ") }));
  if (k.approval_required) parts.push(t("keys.needs_approval"));
  return parts.length ? parts.join(" · ") : "—";
}

// ---------------------------------------------------------------- branding
const TERMS = ["store", "stores", "payment", "payments", "payout", "payouts", "customer", "customers", "member", "members", "invoice", "invoices"];

async function branding() {
  const b = await api("GET", "/tenant/branding");
  const previewName = h("span", { id: "preview-name" });
  const previewTop = h("div", { class: "preview-top" }, previewName);
  const previewBody = h("div", { class: "preview-body" });
  const pv = h("div", { class: "preview", id: "branding-preview", "aria-label": t("branding.preview") }, previewTop, previewBody);
  const f = h(
    "form",
    { class: "stack card", id: "branding-form" },
    field(t("branding.display"), "display_name", { value: b.display_name || "", maxlength: 120 }),
    field(t("branding.logo"), "logo_url", { type: "url", value: b.logo_url || "" }),
    field(t("branding.primary"), "primary_colour", { type: "color", value: b.primary_colour || "#0a7e3c" }),
    field(t("branding.secondary"), "secondary_colour", { type: "color", value: b.secondary_colour || "#134e4a" }),
    h("fieldset", {}, h("legend", {}, t("branding.terms")), h("div", { class: "grid" }, TERMS.map((w) => field(w, "term." + w, { value: (b.terminology || {})[w] || "", maxlength: 30 })))),
    h("button", { type: "submit", class: "primary" }, t("branding.save")),
  );
  const update = () => {
    const v = Object.fromEntries(new FormData(f).entries());
    previewName.textContent = v.display_name || context().me.tenant.name;
    previewTop.style.setProperty("background", v.primary_colour);
    previewTop.style.setProperty("color", readableOn(v.primary_colour));
    previewBody.replaceChildren(h("p", {}, (v["term.stores"] || t("term.stores")) + " · " + (v["term.payments"] || t("term.payments"))), h("a", { href: "#/branding", class: "preview-link" }, "link"));
    previewBody.querySelector("a").style.setProperty("color", v.secondary_colour);
  };
  f.addEventListener("input", update);
  update();
  const done = h("div", { "aria-live": "polite" });
  onSubmit(f, async (v) => {
    const terminology = {};
    for (const w of TERMS) if (v["term." + w]) terminology[w] = v["term." + w].trim();
    const body = {
      display_name: v.display_name || null,
      logo_url: v.logo_url || null,
      primary_colour: v.primary_colour,
      secondary_colour: v.secondary_colour,
      terminology,
    };
    if (b.contact_email) body.contact_email = b.contact_email;
    const saved = await api("PUT", "/tenant/branding", { body });
    applyBranding(saved && saved.primary_colour !== undefined ? saved : body);
    await refreshContext();
  });
  return [h("h1", {}, t("branding.title")), done, h("h2", {}, t("branding.preview")), pv, f];
}

// ---------------------------------------------------------------- settings
async function settings() {
  const ctx = context();
  const out = [h("h1", {}, t("settings.title"))];
  const s = ctx.settings;
  const done = h("div", { "aria-live": "polite" });
  if (can("settings.manage")) {
    const f = h(
      "form",
      { class: "stack card", id: "settings-form" },
      h("h2", {}, t("settings.profile")),
      done,
      field(t("settings.orgname"), "name", { value: ctx.me.tenant.name, required: true }),
      field(t("settings.locale"), "locale", { options: [["en-KE", "English (Kenya)"], ["sw-KE", "Kiswahili (Kenya)"], ["en-US", "English (US)"], ["en-GB", "English (UK)"]], value: s.locale }),
      field(t("settings.timezone"), "timezone", { value: s.timezone || "Africa/Nairobi" }),
      field(t("settings.currency"), "currency_display", { options: [["code", "KES 1,250.00"], ["symbol", "KSh 1,250.00"]], value: s.currency_display }),
      h("button", { type: "submit", class: "primary" }, t("settings.save")),
    );
    onSubmit(f, async (v) => {
      if (v.name !== ctx.me.tenant.name) await api("PATCH", "/tenant", { body: { name: v.name } });
      await api("PATCH", "/tenant/settings", { body: { locale: v.locale, timezone: v.timezone, currency_display: v.currency_display } });
      localStorage.removeItem("malipo.lang");
      await refreshContext();
    });
    out.push(f);
  }
  if (can("mpesa.credentials.manage")) {
    const c = await api("GET", "/mpesa/credentials").catch(() => null);
    const res = h("div", { "aria-live": "polite" });
    const f = h(
      "form",
      { class: "stack card", id: "mpesa-form", autocomplete: "off" },
      h("h2", {}, t("settings.mpesa")),
      h("p", {}, c && c.configured ? t("settings.configured") + ": " + c.environment + " · " + c.shortcode : t("settings.notconfigured")),
      h("p", { class: "muted" }, t("settings.mpesa.help")),
      res,
      field("environment", "environment", { options: [["sandbox", "sandbox"], ["production", "production"], ["custom", "custom"]], value: c && c.environment }),
      field("shortcode", "shortcode", { value: (c && c.shortcode) || "", required: true }),
      field("consumer_key", "consumer_key", { type: "password", required: true, autocomplete: "off" }),
      field("consumer_secret", "consumer_secret", { type: "password", required: true, autocomplete: "off" }),
      field("passkey", "passkey", { type: "password", required: true, autocomplete: "off" }),
      field("initiator_name", "initiator_name", { value: (c && c.initiator_name) || "", required: true }),
      field("initiator_password", "initiator_password", { type: "password", required: true, autocomplete: "off" }),
      field("base_url", "base_url", { type: "url", value: (c && c.base_url) || "" }),
      h("div", {}, h("button", { type: "submit", class: "primary" }, t("settings.mpesa.save")), " ",
        h("button", { type: "button", id: "mpesa-test", onclick: async () => { res.replaceChildren(h("p", { class: "muted" }, t("loading"))); try { await api("POST", "/mpesa/credentials/test", { body: {} }); res.replaceChildren(banner("ok", t("settings.mpesa.ok"))); } catch (e) { res.replaceChildren(banner("error", errorText(e))); } } }, t("settings.mpesa.test"))),
    );
    onSubmit(f, async (v) => {
      const body = { ...v };
      if (!body.base_url) delete body.base_url;
      await api("PUT", "/mpesa/credentials", { body });
      res.replaceChildren(banner("ok", t("settings.saved")));
      f.querySelectorAll("input[type=password]").forEach((i) => (i.value = ""));
    });
    out.push(f);
    // STK, B2C, reversal and status requests carry their own callback
    // URLs (made per request, with the organization's callback token);
    // only C2B's are registered with Safaricom once, from here.
    const c2bSaid = h("div", { "aria-live": "polite" });
    const c2b = h(
      "form",
      { class: "stack card", id: "c2b-form" },
      h("h2", {}, t("settings.callbacks")),
      h("p", { class: "muted" }, t("settings.callbacks.help")),
      c2bSaid,
      field(t("settings.c2b.type"), "response_type", { options: [["Completed", t("settings.c2b.completed")], ["Cancelled", t("settings.c2b.cancelled")]] }),
      h("button", { type: "submit" }, t("settings.c2b.register")),
    );
    onSubmit(c2b, async (v) => {
      const r = await api("POST", "/mpesa/c2b/register", { body: { response_type: v.response_type } });
      c2bSaid.replaceChildren(banner("ok", t("settings.c2b.done", { shortcode: r.shortcode, at: when(r.registered_at) })));
    });
    out.push(c2b);
  }
  if (can("notifications.manage")) {
    out.push(await templates().catch((e) => banner("error", errorText(e))));
  }
  return out;
}

// ---------------------------------------------------------------- webhooks
async function webhooks() {
  const r = await api("GET", "/webhooks");
  const list = r.webhooks || r.endpoints || [];
  const out = [h("h1", {}, t("webhooks.title"))];
  const secret = h("div", { "aria-live": "polite" });
  for (const w of list) {
    const d = await api("GET", `/webhooks/${w.id}/deliveries`).catch(() => null);
    const rows = ((d && (d.deliveries || [])) || []).map((x) => h("tr", {}, h("td", {}, when(x.created_at || x.at)), h("td", {}, x.event || x.event_name || ""), h("td", {}, status(x.status)), h("td", {}, h("button", { type: "button", onclick: async (ev) => { try { await api("POST", `/webhooks/${w.id}/deliveries/${x.id}/retry`, { body: {} }); ev.target.replaceWith(document.createTextNode("✔")); } catch (e) { ev.target.after(h("span", { class: "error" }, errorText(e))); } } }, t("webhooks.retry")))));
    out.push(h("div", { class: "card" }, h("h2", {}, w.url), h("p", {}, (w.events || []).join(", ")),
      h("button", { type: "button", class: "danger", onclick: async () => { await api("DELETE", "/webhooks/" + w.id); render(); } }, t("webhooks.delete")),
      h("h3", {}, t("webhooks.deliveries")), rows.length ? table([t("audit.when"), "event", t("tx.status"), ""], rows) : h("p", { class: "muted" }, "—")));
  }
  const f = h("form", { class: "stack card" }, field(t("webhooks.url"), "url", { type: "url", required: true }), field(t("webhooks.events"), "events", { required: true, value: "payment.completed" }), h("button", { type: "submit", class: "primary" }, t("webhooks.add")));
  onSubmit(f, async (v) => {
    const w = await api("POST", "/webhooks", { body: { url: v.url, events: v.events.split(",").map((x) => x.trim()).filter((x) => x) } });
    if (w && w.secret) secret.replaceChildren(h("div", { class: "card" }, h("p", {}, t("keys.secret")), h("p", { class: "secret" }, w.secret)));
    else render();
  });
  out.push(secret, f);
  return out;
}

// ------------------------------------------------------------------- audit
async function audit() {
  const p = params();
  const FILTERS = ["operation", "outcome", "channel", "actor_id", "from", "to"];
  const query = { limit: Number(p.limit) || 50 };
  for (const k of [...FILTERS, "cursor"]) if (p[k]) query[k] = p[k];
  const [v, r] = await Promise.all([api("GET", "/audit/verify").catch((e) => ({ error: e })), api("GET", "/audit", { query })]);
  const check = v.error ? banner("error", errorText(v.error)) : v.ok ? banner("ok", t("audit.ok", { n: v.rows })) : banner("error", t("audit.broken", { n: v.first_broken && (v.first_broken.seq || v.first_broken) }));
  const f = h(
    "form",
    { class: "inline card", id: "audit-filters" },
    field(t("audit.operation"), "operation", { value: p.operation || "", placeholder: "stores.*" }),
    field(t("audit.outcome"), "outcome", { options: [["", t("tx.any")], ["success", "success"], ["failure", "failure"]], value: p.outcome || "" }),
    field(t("audit.channel"), "channel", { options: [["", t("tx.any")], ["rest", "rest"], ["mcp", "mcp"], ["cli", "cli"], ["job", "job"], ["system", "system"], ["callback", "callback"]], value: p.channel || "" }),
    field(t("audit.actor"), "actor_id", { value: p.actor_id || "" }),
    field(t("tx.from"), "from", { type: "date", value: p.from || "" }),
    field(t("tx.to"), "to", { type: "date", value: p.to || "" }),
    h("button", { type: "submit", class: "primary" }, t("tx.filter")),
  );
  const hashOf = (values) => {
    const q = new URLSearchParams();
    for (const k of [...FILTERS, "cursor", "limit"]) if (values[k]) q.set(k, values[k]);
    const text = q.toString();
    return "#/audit" + (text ? "?" + text : "");
  };
  onSubmit(f, async (x) => {
    // Asked once here so a refused filter is shown next to its field.
    const probe = { limit: 1 };
    for (const k of FILTERS) if (x[k]) probe[k] = x[k];
    await api("GET", "/audit", { query: probe });
    location.hash = hashOf(x);
  });
  const more = r.next_cursor ? h("p", { class: "pager" }, h("a", { href: hashOf({ ...p, cursor: r.next_cursor }), id: "audit-next" }, t("audit.older"))) : null;
  return [
    h("h1", {}, t("audit.title")),
    h("h2", {}, t("audit.verify")),
    check,
    f,
    r.entries.length
      ? table([t("audit.when"), t("audit.operation"), t("audit.actor"), t("audit.channel"), t("audit.outcome")], r.entries.map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.operation), h("td", {}, e.actor_type + (e.actor_id ? " " + e.actor_id.slice(0, 8) : "")), h("td", {}, e.channel), h("td", {}, e.outcome))))
      : h("p", { class: "muted", id: "audit-none" }, t("audit.none")),
    more,
  ];
}

// ------------------------------------------------------------------- admin
async function admin() {
  const [tenants, alerts, pa, plans, usage] = await Promise.all([
    api("GET", "/admin/tenants"),
    api("GET", "/admin/alerts").catch(() => ({ alerts: [] })),
    api("GET", "/admin/audit", { query: { limit: 20 } }).catch(() => ({ entries: [] })),
    api("GET", "/admin/plans").catch(() => ({ plans: [] })),
    api("GET", "/admin/usage").catch(() => ({ tenants: [] })),
  ]);
  const used = Object.fromEntries((usage.tenants || []).map((u) => [u.tenant_id, u.usage || {}]));
  const usageOf = (id) => {
    const u = used[id];
    return u && typeof u.transactions === "number" ? t("admin.usage_line", { tx: u.transactions, api: u.api_calls }) : "—";
  };
  return [
    h("h1", {}, t("admin.title")),
    h("h2", {}, t("admin.tenants")),
    table(["Name", t("billing.plan"), t("tx.status"), t("tx.created"), t("admin.usage"), [t("admin.size"), "num"], t("admin.activity"), ""], (tenants.tenants || []).map((x) => h("tr", { "data-tenant": x.id }, h("td", {}, x.name), h("td", {}, x.plan || ""), h("td", {}, status(x.status), x.deletion_due_at ? " → " + when(x.deletion_due_at) : ""), h("td", {}, when(x.created_at)), h("td", { class: "usage" }, usageOf(x.id)), h("td", { class: "num" }, x.db_bytes ? (x.db_bytes / 1048576).toFixed(1) + " MB" : "—"), h("td", {}, x.last_activity_at ? when(x.last_activity_at) : "—"),
      h("td", {}, x.status === "active" ? h("button", { type: "button", onclick: act(() => api("PATCH", "/admin/tenants/" + x.id, { body: { status: "suspended" } })) }, t("admin.suspend")) : h("button", { type: "button", onclick: act(() => api("PATCH", "/admin/tenants/" + x.id, { body: { status: "active" } })) }, t("admin.reactivate")),
        " ", x.deletion_due_at ? null : h("button", { type: "button", class: "danger", onclick: act(() => api("DELETE", "/admin/tenants/" + x.id)) }, t("admin.delete")))))),
    h("h2", {}, t("admin.plans")),
    table(["id", "Name", [t("tx.amount"), "num"]], (plans.plans || []).map((x) => h("tr", {}, h("td", {}, x.id), h("td", {}, x.name), h("td", { class: "num" }, money(x.price_kes))))),
    h("h2", {}, t("admin.alerts")),
    (alerts.alerts || []).length ? table([t("audit.when"), "kind", "tenant", ""], alerts.alerts.map((a) => h("tr", {}, h("td", {}, when(a.created_at || a.opened_at)), h("td", {}, a.kind), h("td", {}, a.tenant_id), h("td", {}, a.acknowledged_at ? "✔" : h("button", { type: "button", onclick: act(() => api("POST", `/admin/alerts/${a.id}/acknowledge`, { body: {} })) }, t("admin.ack")))))) : h("p", { class: "muted" }, "—"),
    h("h2", {}, t("admin.audit")),
    table([t("audit.when"), t("audit.operation"), t("audit.outcome")], (pa.entries || []).map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.operation || e.action || ""), h("td", {}, e.outcome || "")))),
  ];
}

async function transactionsRoute(ctx) {
  const parts = location.hash.replace(/^#\//, "").split("?")[0].split("/");
  if (parts[1]) return transactionDetail(decodeURIComponent(parts[1]), ctx);
  return transactions(ctx);
}

export const PAGES = {
  overview,
  transactions: transactionsRoute,
  collect,
  payouts,
  approvals,
  reports,
  billing,
  team,
  keys,
  branding,
  settings,
  webhooks,
  audit,
  admin,
};

// Unused-import guard for linters that read this file alone.
void ApiError;
void showError;
