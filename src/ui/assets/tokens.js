// Hugging Face tokens at every level, shown only as set or not set: the system's (admin),
// each organization's (admin or its owner), each user's, each model's and where a model's
// launch takes its token from; and the profile page, where users set their own.

import { api } from "./api.js";
import { $, el, fillSelect, fillSummary, fillTable, tokenState, yesNo } from "./dom.js";

// Where a model's token comes from, and whose it is when the level has an owner.
export function describeSource(source, snap) {
  if (!source) return el("span", { class: "unset" }, "not visible to you");
  const orgName = (id) => (snap.orgs ?? []).find((o) => o.id === id)?.name ?? id;
  const userName = (id) => (snap.users ?? []).find((u) => u.id === id)?.name ?? id;
  let text = source.source;
  if (source.source === "user" && source.user_id) text += ` (${userName(source.user_id)})`;
  if (source.source === "organization" && source.organization_id) text += ` (${orgName(source.organization_id)})`;
  if (source.source === "environment" && source.node_id !== undefined) text += ` (HF_TOKEN of node ${source.node_id})`;
  return el("span", { class: source.source === "none" ? "unset" : "set", "data-token-source": source.source }, text);
}

function systemState(settings) {
  if (!settings.huggingface_token_set) return tokenState(false);
  return el("span", { class: "set" }, settings.huggingface_token_source === "environment" ? "set (this node's HF_TOKEN)" : "set");
}

export function renderTokens(snap) {
  const me = snap.me;
  $("system-token-box").hidden = !me.admin;
  if (snap.system) $("system-token-state").replaceChildren(systemState(snap.system));

  const orgs = snap.orgs ?? [];
  fillTable(
    $("orgs-table"),
    JSON.stringify(orgs),
    ["Organization", "Id", "Token"],
    orgs.map((o) => el("tr", { "data-org": o.id }, el("td", {}, o.name), el("td", {}, o.id), el("td", { class: "token" }, tokenState(o.huggingface_token_set)))),
    "no organization you can see",
  );
  const settable = orgs.filter((o) => me.admin || (me.org_role === "owner" && me.organization_id === o.id));
  $("org-token-box").hidden = settable.length === 0;
  fillSelect($("org-token-org"), settable.map((o) => [o.id, o.name]));

  const users = snap.users ?? [];
  const orgName = (id) => orgs.find((o) => o.id === id)?.name ?? id ?? "";
  fillTable(
    $("users-table"),
    JSON.stringify([users, orgs]),
    ["User", "Id", "Admin", "Organization", "Role", "Disabled", "Token"],
    users.map((u) =>
      el(
        "tr",
        { "data-user": u.id },
        el("td", {}, u.name),
        el("td", {}, u.id),
        el("td", {}, u.admin ? "yes" : "no"),
        el("td", {}, orgName(u.organization_id)),
        el("td", {}, u.org_role ?? ""),
        el("td", {}, u.disabled ? "yes" : "no"),
        el("td", { class: "token" }, tokenState(u.huggingface_token_set)),
      ),
    ),
  );

  const models = snap.models ?? [];
  fillTable(
    $("model-tokens-table"),
    JSON.stringify([models.map((m) => [m.id, m.huggingface_token_set]), snap.tokenSources, orgs, users]),
    ["Model", "Token", "Token source"],
    models.map((m) =>
      el("tr", { "data-model": m.id }, el("td", {}, m.id), el("td", { class: "token" }, tokenState(m.huggingface_token_set)), el("td", { class: "source" }, describeSource(snap.tokenSources[m.id], snap))),
    ),
    "no models yet",
  );
}

export function renderProfile(snap) {
  const me = snap.me;
  const org = (snap.orgs ?? []).find((o) => o.id === me.organization_id);
  fillSummary($("profile-summary"), [
    ["Name", me.name],
    ["Id", me.id],
    ["Admin", me.admin ? "yes" : "no"],
    ["Organization", me.organization_id ? (org?.name ?? me.organization_id) : "none"],
    ["Role", me.org_role ?? ""],
    ["Disabled", yesNo(me.disabled, false)],
  ]);
  $("user-token-state").replaceChildren(tokenState(me.huggingface_token_set));
}

// A token form: Set sends the typed token, Clear sends "" (which clears it). The field is
// emptied as soon as the request leaves, so the token stays on the page no longer.
export function wireTokenForm(act, { form, input, clear, what, path }) {
  const send = (token, done) => {
    $(input).value = "";
    act(`Token of ${what()} ${done}.`, () => api("PUT", path(), { huggingface_token: token }));
  };
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $(input).value;
    if (token === "") {
      act(null, () => Promise.reject(new Error("Type a token to set, or use Clear.")));
      return;
    }
    send(token, "set");
  });
  $(clear).addEventListener("click", () => send("", "cleared"));
}

export function wireTokens(act) {
  wireTokenForm(act, {
    form: "system-token-form",
    input: "system-token",
    clear: "system-token-clear",
    what: () => "the system",
    path: () => "/api/v1/system/settings",
  });
  wireTokenForm(act, {
    form: "org-token-form",
    input: "org-token",
    clear: "org-token-clear",
    what: () => `organization ${$("org-token-org").selectedOptions[0]?.textContent ?? ""}`,
    path: () => `/api/v1/orgs/${encodeURIComponent($("org-token-org").value)}/settings`,
  });
  wireTokenForm(act, {
    form: "user-token-form",
    input: "user-token",
    clear: "user-token-clear",
    what: () => "your user",
    path: () => "/api/v1/users/me/settings",
  });
}
