// The dashboard: log in with an API key, show one view at a time, refresh on its own every
// few seconds (tables are redrawn only when their data changed, forms never, so typing is
// not lost), and show every API error in the message area.

import { api, forgetKey, storedKey, storeKey } from "./api.js";
import { renderAudit, renderHealth, renderNodes } from "./cluster.js";
import { $ } from "./dom.js";
import { loadSnapshot } from "./load.js";
import { renderModels, wireModels } from "./models.js";
import { renderProfile, renderTokens, wireTokens } from "./tokens.js";

const REFRESH_MS = 4000;
const VIEWS = ["health", "nodes", "models", "tokens", "profile", "audit"];

let timer = null;
let loading = null;
let again = false;
// The message area shows a failed refresh until a refresh succeeds, and a failed action
// until the next action.
let refreshFailed = false;

function showError(text) {
  $("notice").hidden = true;
  $("message").textContent = text;
  $("message").hidden = false;
}

function showNotice(text) {
  $("message").hidden = true;
  $("notice").textContent = text;
  $("notice").hidden = false;
}

function clearMessages() {
  $("message").hidden = true;
  $("notice").hidden = true;
}

function describe(error) {
  return error.apiMessage !== undefined ? error.message : String(error.message ?? error);
}

function showView() {
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : "health";
  // A success notice is about the page it was given on.
  $("notice").hidden = true;
  for (const name of VIEWS) $(`${name}-view`).hidden = name !== view;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
}

function render(snap) {
  $("who-name").textContent = `${snap.me.name}${snap.me.admin ? " (admin)" : ""}`;
  renderHealth(snap);
  renderNodes(snap);
  renderModels(snap);
  renderTokens(snap);
  renderProfile(snap);
  renderAudit(snap);
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
}

// Read everything and redraw; a refresh asked for while one runs runs right after it.
async function refresh() {
  if (loading) {
    again = true;
    return loading;
  }
  clearTimeout(timer);
  loading = (async () => {
    try {
      const snap = await loadSnapshot();
      render(snap);
      if (snap.errors.length) {
        refreshFailed = true;
        showError(`Some reads failed: ${snap.errors.map(describe).join("; ")}`);
      } else if (refreshFailed) {
        refreshFailed = false;
        $("message").hidden = true;
      }
    } catch (error) {
      if (error.status === 401) {
        logOut(`The API refused the key: ${error.apiMessage}`);
        return;
      }
      refreshFailed = true;
      showError(`Refresh failed: ${describe(error)}`);
    } finally {
      loading = null;
    }
    if (storedKey()) timer = setTimeout(refresh, REFRESH_MS);
    if (again) {
      again = false;
      refresh();
    }
  })();
  return loading;
}

// Run one action: its success as a notice, its failure in the message area, then refresh.
async function act(success, action) {
  try {
    await action();
    refreshFailed = false;
    if (success) showNotice(success);
    else clearMessages();
  } catch (error) {
    showError(describe(error));
  }
  await refresh();
}

function loggedIn(yes) {
  $("login-view").hidden = yes;
  $("nav").hidden = !yes;
  $("who").hidden = !yes;
  if (yes) showView();
  else for (const name of VIEWS) $(`${name}-view`).hidden = true;
}

function logOut(why) {
  clearTimeout(timer);
  forgetKey();
  loggedIn(false);
  if (why) showError(why);
  else showNotice("Logged out.");
}

async function logIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("api-key").value = "";
  if (key === "") {
    showError("Type an API key.");
    return;
  }
  storeKey(key);
  try {
    await api("GET", "/api/v1/users/me");
  } catch (error) {
    forgetKey();
    showError(`Log-in failed: ${describe(error)}`);
    return;
  }
  clearMessages();
  loggedIn(true);
  refresh();
}

function start() {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", () => logOut());
  window.addEventListener("hashchange", showView);
  wireModels(act);
  wireTokens(act);
  if (storedKey()) {
    loggedIn(true);
    refresh();
  } else {
    loggedIn(false);
  }
}

start();
