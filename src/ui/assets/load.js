// One refresh: everything the views show, read from the API. Each read fails on its own, so
// the health view still shows when, say, the cluster has no leader and other reads wait.

import { api, modelPath } from "./api.js";

export async function loadSnapshot() {
  const me = await api("GET", "/api/v1/users/me");
  const reads = {
    status: api("GET", "/api/v1/cluster/status"),
    slots: api("GET", "/api/v1/slots"),
    models: api("GET", "/api/v1/helix-models"),
    orgs: api("GET", "/api/v1/orgs"),
    users: api("GET", "/api/v1/users"),
  };
  if (me.admin) {
    reads.system = api("GET", "/api/v1/system/settings");
    reads.audit = api("GET", "/api/v1/audit?limit=25");
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
    visible.map((m) => api("GET", modelPath(m.id, "/token-source"))),
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
