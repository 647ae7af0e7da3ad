// Small pieces every page draws the same way: a status badge, a table
// that scrolls on its own on a phone, and a button's action.
import { statusText } from "./i18n.js";
import { h, errorText, render } from "./app.js";

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

/** A button's action: redraws the page when it worked, says why next to it when not. */
export function act(fn) {
  return async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    try {
      await fn();
      render();
    } catch (e) {
      button.disabled = false;
      button.after(h("span", { class: "error", role: "alert" }, " " + errorText(e)));
    }
  };
}
