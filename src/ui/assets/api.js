// The JSON API, called with the key kept in this tab's session storage (never anywhere
// else: it is gone when the tab closes).

const KEY = "helix.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

// An answer other than 2xx, with the API's own message.
export class ApiFailure extends Error {
  constructor(method, path, status, message) {
    super(`${method} ${path}: ${status} ${message}`);
    this.status = status;
    this.apiMessage = message;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${storedKey() ?? ""}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiFailure(method, path, "no answer", `(${e.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: the message below says what came back.
  }
  if (!response.ok) {
    const message = json && typeof json.error === "string" ? json.error : text.slice(0, 200);
    throw new ApiFailure(method, path, response.status, message);
  }
  return json;
}

// A model id may hold `/`: each segment is encoded, the slashes kept.
export function modelPath(id, suffix = "") {
  return `/api/v1/helix-models/${id.split("/").map(encodeURIComponent).join("/")}${suffix}`;
}
