// DOM and API helpers. Text only ever goes in as text nodes (never innerHTML): a job that
// prints <script> shows it, and it does not run.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Every URL is relative to the page, so the runner works behind a proxy's sub-path.
export function url(path, query = {}) {
  const u = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(query)) if (v !== "" && v != null) u.searchParams.set(k, v);
  return u;
}

export class Problem extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export async function api(path, { method = "GET", query = {}, json } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json || {});
  }
  const response = await fetch(url(path, query), init);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, body);
  return body;
}

export function when(epoch) {
  return epoch == null ? "–" : new Date(epoch * 1000).toLocaleString();
}

export function seconds(value) {
  return value == null ? "–" : `${value.toFixed(value < 10 ? 2 : 0)} s`;
}

export function stateBadge(state) {
  return el("span", { class: `state state-${state}` }, state);
}

export function show(main, ...nodes) {
  main.replaceChildren(...nodes);
}

export function failure(error) {
  const detail = error instanceof Problem ? error.message : String(error);
  return el("p", { class: "problem", role: "alert" }, detail);
}
