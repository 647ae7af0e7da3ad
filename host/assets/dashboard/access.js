// Team and access: members with the roles they hold (tenant-wide or for one
// store), invitations, roles and their permissions, and the stores. Each
// change is one REST call; the API decides what the caller may do, the page
// only hides what /me's permissions say would be refused.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, field, onSubmit, banner, context, can, render, refreshContext } from "./app.js";
import { act, status, table } from "./widgets.js";

function storeLabel(id) {
  if (!id) return t("store.all");
  const s = context().stores.find((x) => x.id === id);
  return s ? s.name : id.slice(0, 8);
}

function storeOptions() {
  return [["", t("store.all")], ...context().stores.map((s) => [s.id, s.name])];
}

/** Checkboxes for every permission, the role's own ticked. */
function permissionBoxes(all, held, prefix) {
  return h(
    "fieldset",
    { class: "perm-grid" },
    h("legend", {}, t("keys.perms")),
    all.map((p, i) =>
      h("div", {}, h("input", { type: "checkbox", name: "perm", value: p.name, id: `${prefix}-${i}`, checked: held.includes(p.name) }), " ", h("label", { for: `${prefix}-${i}`, title: p.description }, p.name)),
    ),
    h("span", { class: "error", "data-error-for": "permissions" }),
  );
}

function ticked(form) {
  return [...form.querySelectorAll("[name=perm]:checked")].map((c) => c.value);
}

function memberRow(u, assignments, roles) {
  const me = context().me.user.id;
  const held = h(
    "ul",
    { class: "plain" },
    (assignments || []).map((a) =>
      h(
        "li",
        {},
        `${a.role_name} · ${storeLabel(a.store_id)} `,
        can("roles.assign")
          ? h("button", {
              type: "button",
              class: "link danger",
              "aria-label": t("team.unassign", { role: a.role_name, name: u.full_name }),
              onclick: act(() => api("DELETE", `/users/${u.id}/roles/${a.role_id}`, { query: { store_id: a.store_id || "" } })),
            }, "✕")
          : null,
      ),
    ),
  );
  const actions = h("td", {});
  if (can("roles.assign")) {
    const f = h(
      "form",
      { class: "inline assign-role" },
      field(t("team.role"), "role_id", { options: [...roles].sort((a, b) => (a.name === "Owner") - (b.name === "Owner")).map((r) => [r.id, r.name]) }),
      field(t("tx.store"), "store_id", { options: storeOptions() }),
      h("button", { type: "submit" }, t("team.give")),
    );
    onSubmit(f, async (v) => {
      const body = { role_id: v.role_id };
      if (v.store_id) body.store_id = v.store_id;
      await api("POST", `/users/${u.id}/roles`, { body });
      render();
    });
    actions.append(f);
  }
  if (can("users.update") && u.id !== me) {
    const next = u.status === "active" ? "deactivated" : "active";
    actions.append(h("button", { type: "button", onclick: act(() => api("PATCH", "/users/" + u.id, { body: { status: next } })) }, next === "active" ? t("team.reactivate") : t("team.deactivate")));
  }
  return h("tr", { "data-user": u.email }, h("td", {}, u.full_name), h("td", {}, u.email), h("td", {}, status(u.status)), h("td", { class: "wrap" }, held), actions);
}

function inviteForm(roles) {
  const done = h("div", { "aria-live": "polite" });
  const f = h(
    "form",
    { class: "stack card", id: "invite-form" },
    h("h2", {}, t("team.invite")),
    done,
    field(t("team.email"), "email", { type: "email", required: true }),
    field(t("team.role"), "role_id", { options: roles.filter((r) => r.name !== "Owner").map((r) => [r.id, r.name]) }),
    field(t("tx.store"), "store_id", { options: storeOptions() }),
    h("button", { type: "submit", class: "primary" }, t("team.invite")),
  );
  onSubmit(f, async (v) => {
    const body = { email: v.email, role_id: v.role_id };
    if (v.store_id) body.store_id = v.store_id;
    await api("POST", "/invitations", { body });
    done.replaceChildren(banner("ok", t("team.invited", { email: v.email })));
    f.querySelector("[name=email]").value = "";
  });
  return f;
}

function roleEditor(r, all) {
  const summary = h("summary", {}, `${r.name} — ${r.permissions.length} ${t("keys.perms").toLowerCase()}`);
  if (r.name === "Owner" || !can("roles.update")) {
    return h("details", { class: "role" }, summary, h("p", { class: "muted" }, r.description || ""), h("p", { class: "wrap" }, r.permissions.join(", ")));
  }
  const done = h("div", { "aria-live": "polite" });
  const f = h(
    "form",
    { class: "stack", "data-role": r.name },
    done,
    r.is_system ? null : field(t("team.rolename"), "name", { value: r.name, required: true, maxlength: 64 }),
    field(t("team.roledesc"), "description", { value: r.description || "", maxlength: 500 }),
    permissionBoxes(all, r.permissions, "rp-" + r.id),
    h("div", {}, h("button", { type: "submit", class: "primary" }, t("team.saverole")), " ",
      !r.is_system && can("roles.delete") ? h("button", { type: "button", class: "danger", onclick: act(() => api("DELETE", "/roles/" + r.id)) }, t("team.deleterole")) : null),
  );
  onSubmit(f, async (v) => {
    const changes = {};
    if (!r.is_system && v.name !== r.name) changes.name = v.name;
    if ((v.description || "") !== (r.description || "")) changes.description = v.description;
    if (Object.keys(changes).length) await api("PATCH", "/roles/" + r.id, { body: changes });
    const saved = await api("PUT", `/roles/${r.id}/permissions`, { body: { permissions: ticked(f) } });
    summary.textContent = `${saved.name} — ${saved.permissions.length} ${t("keys.perms").toLowerCase()}`;
    done.replaceChildren(banner("ok", t("settings.saved")));
  });
  return h("details", { class: "role" }, summary, f);
}

function newRoleForm(all) {
  const f = h(
    "form",
    { class: "stack card", id: "role-form" },
    h("h3", {}, t("team.newrole")),
    field(t("team.rolename"), "name", { required: true, maxlength: 64 }),
    field(t("team.roledesc"), "description", { maxlength: 500 }),
    permissionBoxes(all, [], "np"),
    h("button", { type: "submit", class: "primary" }, t("team.createrole")),
  );
  onSubmit(f, async (v) => {
    const body = { name: v.name, permissions: ticked(f) };
    if (v.description) body.description = v.description;
    await api("POST", "/roles", { body });
    render();
  });
  return f;
}

function storesSection() {
  const out = [h("h2", {}, t("term.stores"))];
  out.push(
    table([t("team.name"), ""], context().stores.map((s) => {
      const cell = h("td", {});
      if (can("stores.update")) {
        const f = h("form", { class: "inline" }, field(t("team.rename"), "name", { value: s.name, required: true, maxlength: 100 }), h("button", { type: "submit" }, t("settings.save")));
        onSubmit(f, async (v) => {
          await api("PATCH", "/stores/" + s.id, { body: { name: v.name } });
          await refreshContext();
        });
        cell.append(f);
      }
      return h("tr", {}, h("td", {}, s.name), cell);
    })),
  );
  if (can("stores.create")) {
    const f = h("form", { class: "inline card", id: "store-form" }, field(t("team.newstore", { store: t("term.store") }), "name", { required: true, maxlength: 100 }), h("button", { type: "submit", class: "primary" }, t("team.addstore")));
    onSubmit(f, async (v) => {
      await api("POST", "/stores", { body: { name: v.name } });
      await refreshContext();
    });
    out.push(f);
  }
  return out;
}

export async function team() {
  const readRoles = can("roles.read");
  const [users, roles, perms] = await Promise.all([
    api("GET", "/users"),
    readRoles ? api("GET", "/roles") : { roles: [] },
    can("roles.update") || can("roles.create") ? api("GET", "/permissions") : { permissions: [] },
  ]);
  const held = readRoles
    ? await Promise.all(users.users.map((u) => api("GET", `/users/${u.id}/roles`).then((r) => r.assignments).catch(() => [])))
    : users.users.map(() => null);
  const out = [h("h1", {}, t("team.title")), h("h2", {}, t("team.members"))];
  out.push(table([t("team.name"), t("team.email"), t("team.status"), t("team.held"), ""], users.users.map((u, i) => memberRow(u, held[i], roles.roles))));
  if (can("invitations.create")) out.push(inviteForm(roles.roles));
  if (readRoles) {
    out.push(h("h2", {}, t("team.roles")), h("div", { class: "stack" }, roles.roles.map((r) => roleEditor(r, perms.permissions))));
    if (can("roles.create")) out.push(newRoleForm(perms.permissions));
  }
  out.push(...storesSection());
  return out;
}
