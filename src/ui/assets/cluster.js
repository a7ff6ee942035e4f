// The cluster's views: health (leader, term, quorum, members), nodes (GPUs and the memory
// their slots reserve) and the audit log.

import { $, bytes, el, fillSummary, fillTable, yesNo } from "./dom.js";

export function renderHealth(snap) {
  const s = snap.status;
  if (!s) return;
  const q = s.quorum;
  fillSummary($("health-summary"), [
    ["Leader", s.leader_id === null ? el("span", { class: "bad" }, "none known") : `node ${s.leader_id}`],
    ["Term", String(s.term)],
    [
      "Quorum",
      el(
        "span",
        { class: q.healthy ? "good" : "bad", id: "quorum-state" },
        `${q.healthy ? "healthy" : "lost"}: ${q.reachable_voters ?? "?"} of ${q.voters} voters reachable, ${q.needed} needed`,
      ),
    ],
    ["Commit / applied index", `${s.commit_index} / ${s.applied_index}`],
    ["Answered by", `node ${s.node_id}`],
  ]);
  const rows = s.members.map((m) =>
    el(
      "tr",
      { "data-node": m.id },
      el("td", {}, String(m.id)),
      el("td", {}, m.role + (m.leader ? " (leader)" : "")),
      el("td", {}, yesNo(m.reachable)),
      el("td", {}, m.api_addr ?? ""),
      el("td", {}, m.peer_addr),
      el("td", {}, m.applied_index === null ? "" : String(m.applied_index)),
    ),
  );
  fillTable(
    $("members-table"),
    JSON.stringify(s.members.map((m) => [m.id, m.role, m.leader, m.reachable, m.api_addr, m.peer_addr, m.applied_index])),
    ["Node", "Role", "Reachable", "API address", "Peer address", "Replicated index"],
    rows,
  );
}

// Memory the slots on each GPU reserve: a model's memory, split over the GPUs of a slot.
function reserved(slots, models) {
  const memory = Object.fromEntries(models.map((m) => [m.id, m.memory]));
  const used = {};
  for (const slot of slots) {
    if (slot.node_id === null || slot.gpu_indices.length === 0) continue;
    const share = (memory[slot.model_id] ?? 0) / slot.gpu_indices.length;
    for (const gpu of slot.gpu_indices) {
      const key = `${slot.node_id}/${gpu}`;
      used[key] = (used[key] ?? 0) + share;
    }
  }
  return used;
}

export function renderNodes(snap) {
  const s = snap.status;
  if (!s) return;
  const slots = snap.slots ?? [];
  const used = reserved(slots, snap.models ?? []);
  const rows = s.members.map((m) => {
    const gpus = m.gpus.length
      ? m.gpus.map((g) => el("div", {}, `GPU ${g.index} ${g.name}: ${bytes(used[`${m.id}/${g.index}`] ?? 0)} of ${bytes(g.memory)} in use`))
      : "no GPUs";
    const here = slots.filter((slot) => slot.node_id === m.id);
    const slotList = here.length ? here.map((slot) => el("div", {}, `${slot.model_id}: ${slot.state}`)) : "none";
    return el(
      "tr",
      { "data-node": m.id },
      el("td", {}, `node ${m.id}` + (m.leader ? " (leader)" : "")),
      el("td", {}, m.api_addr ?? ""),
      el("td", {}, yesNo(m.reachable)),
      el("td", {}, gpus),
      el("td", {}, slotList),
    );
  });
  fillTable(
    $("nodes-table"),
    JSON.stringify([s.members.map((m) => [m.id, m.leader, m.api_addr, m.reachable, m.gpus]), slots, used]),
    ["Node", "API address", "Reachable", "GPUs", "Slots"],
    rows,
  );
}

export function renderAudit(snap) {
  const table = $("audit-table");
  if (!snap.me.admin) {
    fillTable(table, "not admin", ["Audit"], [], "Only an admin may read the audit log.");
    return;
  }
  if (!snap.audit) return;
  const entries = [...snap.audit].reverse();
  fillTable(
    table,
    JSON.stringify(entries),
    ["#", "When", "Actor", "Change", "Level", "Target"],
    entries.map((e) => [String(e.seq), e.at, e.actor_user_id ?? "cluster", e.kind, e.level, e.target ?? ""]),
    "no entries yet",
  );
}
