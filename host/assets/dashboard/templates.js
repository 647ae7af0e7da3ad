// Email templates in settings: each one opens into an editor of its subject,
// text and HTML (the organization's override, else the default), saved with
// PUT and put back to the default with DELETE. A template the engine cannot
// render is refused by the API and the reason is shown by the form.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, field, onSubmit, banner, errorText } from "./app.js";

function editor(item) {
  const mark = h("span", { class: "muted" }, item.overridden ? " · " + t("tpl.custom") : "");
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, t("loading")));
  const panel = h("details", { class: "template", "data-template": item.name }, h("summary", {}, item.name, mark), body);
  let loaded = false;
  panel.addEventListener("toggle", async () => {
    if (!panel.open || loaded) return;
    loaded = true;
    const tpl = await api("GET", "/notification-templates/" + encodeURIComponent(item.name));
    body.replaceChildren(form(tpl, mark));
  });
  return panel;
}

function form(tpl, mark) {
  const done = h("div", { "aria-live": "polite" });
  const f = h(
    "form",
    { class: "stack" },
    h("p", { class: "muted" }, (tpl.description || "") + (tpl.event ? ` (${tpl.event})` : "")),
    done,
    field(t("tpl.subject"), "subject", { value: tpl.subject, required: true }),
    field(t("tpl.text"), "text", { textarea: true, rows: 8, value: tpl.text }),
    field(t("tpl.html"), "html", { textarea: true, rows: 8, value: tpl.html || "" }),
    h("p", { class: "muted wrap" }, t("tpl.variables") + ": " + (tpl.variables || []).map((v) => `{{ ${v} }}`).join(", ")),
    h("div", {}, h("button", { type: "submit", class: "primary" }, t("settings.save")), " ",
      h("button", { type: "button", class: "restore", onclick: async () => {
        try {
          const back = await api("DELETE", "/notification-templates/" + encodeURIComponent(tpl.name));
          f.querySelector("[name=subject]").value = back.subject;
          f.querySelector("[name=text]").value = back.text;
          f.querySelector("[name=html]").value = back.html || "";
          mark.textContent = "";
          done.replaceChildren(banner("ok", t("tpl.restored")));
        } catch (e) {
          done.replaceChildren(banner("error", errorText(e)));
        }
      } }, t("tpl.restore"))),
  );
  onSubmit(f, async (v) => {
    await api("PUT", "/notification-templates/" + encodeURIComponent(tpl.name), { body: { subject: v.subject, text: v.text, html: v.html || null } });
    mark.textContent = " · " + t("tpl.custom");
    done.replaceChildren(banner("ok", t("settings.saved")));
  });
  return f;
}

/** The templates card of the settings page. */
export async function templates() {
  const list = (await api("GET", "/notification-templates")).templates || [];
  return h("div", { class: "card", id: "templates" }, h("h2", {}, t("settings.templates")), h("p", { class: "muted" }, t("tpl.help")), list.map(editor));
}
