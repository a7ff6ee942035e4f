// The models view: each model with its slots, states and why they wait, whether a token is
// set and which level a launch takes it from; an admin creates, enables, disables, deletes
// models and sets their tokens.

import { api, modelPath } from "./api.js";
import { $, bytes, el, fillSelect, fillTable, tokenState, yesNo } from "./dom.js";
import { describeSource, wireTokenForm } from "./tokens.js";

function slotCell(slots) {
  if (slots.length === 0) return el("span", { class: "unset" }, "no slot");
  return slots.map((s) => {
    const where = s.node_id === null ? "" : ` on node ${s.node_id}, GPU ${s.gpu_indices.join(", ")}`;
    return el(
      "div",
      { class: "slot", "data-slot": s.id },
      el("span", { class: s.state === "running" ? "good" : s.state === "failed" ? "bad" : "warn" }, s.state),
      where,
      s.restarts ? ` (${s.restarts} restarts)` : "",
      s.pending_reason ? el("div", { class: "hint" }, `pending: ${s.pending_reason}`) : "",
      s.last_error ? el("div", { class: "bad" }, `last error: ${s.last_error}`) : "",
    );
  });
}

export function renderModels(snap) {
  const models = snap.models;
  if (!models) return;
  const admin = snap.me.admin;
  const slots = snap.slots ?? [];
  const rows = models.map((m) => {
    const actions = admin
      ? [
          el("button", { type: "button", "data-action": m.enabled ? "disable" : "enable", "data-model": m.id }, m.enabled ? "Disable" : "Enable"),
          " ",
          el("button", { type: "button", class: "danger", "data-action": "delete", "data-model": m.id }, "Delete"),
        ]
      : [];
    return el(
      "tr",
      { "data-model": m.id },
      el("td", {}, m.id),
      el("td", {}, m.name),
      el("td", {}, m.type),
      el("td", {}, bytes(m.memory)),
      el("td", { class: "enabled" }, yesNo(m.enabled)),
      el("td", {}, slotCell(slots.filter((s) => s.model_id === m.id))),
      el("td", { class: "token" }, tokenState(m.huggingface_token_set)),
      el("td", { class: "source" }, describeSource(snap.tokenSources[m.id], snap)),
      el("td", {}, actions),
    );
  });
  fillTable(
    $("models-table"),
    JSON.stringify([admin, models, slots, snap.tokenSources]),
    ["Id", "Name", "Type", "Memory", "Enabled", "Slots", "Token", "Token source", ""],
    rows,
    "no models yet",
  );
  $("model-create-box").hidden = !admin;
  // An admin sets any model's token, a model's owner their own (docs/security.md).
  const settable = models.filter((m) => admin || m.owner_user_id === snap.me.id);
  $("model-token-box").hidden = settable.length === 0;
  fillSelect($("model-token-model"), settable.map((m) => [m.id, m.id]));
}

function numberOrUndefined(input) {
  return input.value.trim() === "" ? undefined : Number(input.value);
}

export function wireModels(act) {
  $("models-table").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.dataset.model;
    const action = button.dataset.action;
    if (action === "delete") {
      if (!window.confirm(`Delete model ${id}? Its slots stop.`)) return;
      act(`Model ${id} deleted.`, () => api("DELETE", modelPath(id)));
    } else {
      act(`Model ${id} ${action}d.`, () => api("PUT", modelPath(id), { enabled: action === "enable" }));
    }
  });
  $("model-create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {
      id: $("model-id").value.trim(),
      name: $("model-name").value.trim(),
      type: $("model-type").value,
      memory: $("model-memory").value.trim(),
      context_length: numberOrUndefined($("model-context")),
      replicas: numberOrUndefined($("model-replicas")),
      prewarm: $("model-prewarm").checked,
      enabled: $("model-enabled").checked,
    };
    act(`Model ${body.id} created.`, async () => {
      await api("POST", "/api/v1/helix-models", body);
      $("model-create-form").reset();
    });
  });
  wireTokenForm(act, {
    form: "model-token-form",
    input: "model-token",
    clear: "model-token-clear",
    what: () => `model ${$("model-token-model").value}`,
    path: () => modelPath($("model-token-model").value, "/settings"),
  });
}
