// Small pieces every page draws the same way: a status badge and a table
// that scrolls on its own on a phone.
import { statusText } from "./i18n.js";
import { h } from "./app.js";

export function status(s) {
  return h("span", { class: "status " + s }, statusText(s));
}

export function table(headers, rows, caption) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => (Array.isArray(x) ? h("th", { class: x[1], scope: "col" }, x[0]) : h("th", { scope: "col" }, x))))),
      h("tbody", {}, rows),
    ),
  );
}
