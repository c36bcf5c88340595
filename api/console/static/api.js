// The API, from the same origin: the session cookie authenticates; unsafe methods carry the console's
// header (the API's CSRF rule for cookie sessions).

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    // [{path, message}]: the fields at fault, by dotted path.
    this.errors = body?.errors || [];
  }
}

export async function api(method, path, body, contentType) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Deep-Console"] = "1";
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["Content-Type"] = contentType;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const parsed = type.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) throw new ApiError(response.status, type.includes("json") ? parsed : null);
  return parsed;
}

export const get = (path) => api("GET", path);

function append(element, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

// The element's content replaced by `children`; absent ones (null, false) are left out.
export function show(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

// An element with attributes and children: h("button", {class: "primary", onclick}, "Save").
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

export function notice(kind, text, id) {
  return h("div", { class: `message ${kind}`, id }, text);
}

// Runs `action`, showing its error (or `done`) in `slot`.
export async function attempt(slot, action, done) {
  slot.replaceChildren();
  try {
    const result = await action();
    if (done) slot.replaceChildren(notice("ok", done));
    return result;
  } catch (error) {
    slot.replaceChildren(notice("error", error.message));
    return undefined;
  }
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}
