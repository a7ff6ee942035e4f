// Building the page from data. Text goes in as text (never as HTML), so a model or user name
// cannot inject markup; the content policy forbids inline script anyway.

export const $ = (id) => document.getElementById(id);

// An element with attributes (`class`, `data-*`, ...) and children (nodes or text).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

// Replace `table`'s rows, only when `key` (the data they show) changed: a refresh that
// changes nothing leaves the page alone, so a click in progress lands on a live button.
export function fillTable(table, key, headers, rows, empty = "none") {
  if (table.dataset.key === key) return;
  table.dataset.key = key;
  const head = el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h))));
  const body = el("tbody");
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { class: "empty", colspan: headers.length }, empty)));
  }
  for (const row of rows) {
    body.append(row instanceof Node ? row : el("tr", {}, row.map((cell) => el("td", {}, cell))));
  }
  table.replaceChildren(head, body);
}

// A definition list of label/value pairs.
export function fillSummary(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

// A select's options ([value, label]), keeping the chosen one when it is still offered.
export function fillSelect(select, options) {
  const key = JSON.stringify(options);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const chosen = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}

// "set" or "not set", never more.
export function tokenState(set) {
  return el("span", { class: set ? "set" : "unset" }, set ? "set" : "not set");
}

export function yesNo(value, goodWhen = true) {
  if (value === null || value === undefined) return el("span", { class: "warn" }, "unknown");
  return el("span", { class: value === goodWhen ? "good" : "bad" }, value ? "yes" : "no");
}

// Bytes as the command line shows them: decimal units.
export function bytes(n) {
  if (n === null || n === undefined) return "";
  for (const [unit, size] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} B`;
}
