// One refresh: everything the views show, read from this node's replica (`stale=true`: no
// round trip to the leader every few seconds, and the page keeps showing while the cluster
// has no leader; the health view says which node answered and how far it has applied).
// Each read fails on its own, so one refused read leaves the others on the page.

import { api, modelPath } from "./api.js";

function read(path) {
  return api("GET", `${path}${path.includes("?") ? "&" : "?"}stale=true`);
}

export async function loadSnapshot() {
  const me = await read("/api/v1/users/me");
  const reads = {
    status: read("/api/v1/cluster/status"),
    slots: read("/api/v1/slots"),
    models: read("/api/v1/helix-models"),
    orgs: read("/api/v1/orgs"),
    users: read("/api/v1/users"),
  };
  if (me.admin) {
    reads.system = read("/api/v1/system/settings");
    reads.audit = read("/api/v1/audit?limit=25");
  }
  const names = Object.keys(reads);
  const settled = await Promise.allSettled(Object.values(reads));
  const snapshot = { me, errors: [] };
  settled.forEach((result, i) => {
    if (result.status === "fulfilled") {
      snapshot[names[i]] = result.value;
    } else {
      snapshot.errors.push(result.reason);
    }
  });
  snapshot.tokenSources = await tokenSources(me, snapshot.models ?? [], snapshot.errors);
  return snapshot;
}

// Which level each model's token comes from, for the models the caller may ask about.
async function tokenSources(me, models, errors) {
  const visible = models.filter((m) => me.admin || m.owner_user_id === me.id);
  const answers = await Promise.allSettled(
    visible.map((m) => read(modelPath(m.id, "/token-source"))),
  );
  const sources = {};
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") {
      sources[visible[i].id] = answer.value;
    } else if (answer.reason.status !== 404) {
      // A model deleted between the two reads is simply gone; anything else is shown.
      errors.push(answer.reason);
    }
  });
  return sources;
}
