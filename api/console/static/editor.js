// The agent editor: one input per field of AgentConfig, built from the API's own schema (/openapi.json),
// so every field is editable and the API's validation errors land on the field they name.
import { ApiError, api, get, h, notice } from "./api.js";
import { sandboxPanel } from "./sandbox.js";
import { traitSliders } from "./traits.js";

let schemas = null;

async function components() {
  schemas ??= (await get("/openapi.json")).components.schemas;
  return schemas;
}

function resolve(schema) {
  return schema.$ref ? schemas[schema.$ref.split("/").pop()] : schema;
}

// `X | None` in the schema: anyOf [X, null].
function nullable(schema) {
  const options = schema.anyOf || [];
  const inner = options.filter((option) => option.type !== "null");
  return options.length === 2 && inner.length === 1 ? inner[0] : null;
}

// A field's own title, else its name: never the title of the type it refers to ("AgentMode").
function label(name, schema) {
  const named = name.replaceAll("_", " ");
  return schema.title || named.charAt(0).toUpperCase() + named.slice(1);
}

function fieldBox(path, title, input, wide) {
  return h(
    "div",
    { class: `field${wide ? " wide" : ""}`, dataset: { path } },
    h("label", {}, title, input),
    h("span", { class: "field-error" }),
  );
}

// Each builder returns {element, read}: read() gives the field's value (or throws naming the field).
function scalar(path, name, schema, value) {
  const title = label(name, schema);
  if (schema.enum) {
    const select = h("select", { name: path }, schema.enum.map((option) => h("option", { value: option, selected: option === value }, option)));
    return { element: fieldBox(path, title, select), read: () => select.value };
  }
  if (schema.type === "boolean") {
    const box = h("input", { type: "checkbox", name: path, checked: Boolean(value) });
    const element = h("div", { class: "field", dataset: { path } }, h("label", { class: "check" }, box, title), h("span", { class: "field-error" }));
    return { element, read: () => box.checked };
  }
  if (schema.type === "integer" || schema.type === "number") {
    const input = h("input", { type: "number", name: path, step: schema.type === "integer" ? "1" : "any", value: value ?? "" });
    return { element: fieldBox(path, title, input), read: () => (input.value === "" ? null : Number(input.value)) };
  }
  if (schema.type === "string") {
    const long = (schema.maxLength ?? 0) > 300;
    const input = long ? h("textarea", { name: path }, value ?? "") : h("input", { name: path, value: value ?? "" });
    return { element: fieldBox(path, title, input, long), read: () => input.value };
  }
  return null;
}

function stringList(path, name, schema, value) {
  const items = resolve(schema.items || {});
  if (items.enum) {
    const boxes = items.enum.map((option) => h("input", { type: "checkbox", value: option, checked: (value || []).includes(option) }));
    const choices = h("div", { class: "choices" }, boxes.map((box) => h("label", { class: "check" }, box, box.value)));
    const element = h("div", { class: "field wide", dataset: { path } }, h("label", {}, label(name, schema)), choices, h("span", { class: "field-error" }));
    return { element, read: () => boxes.filter((box) => box.checked).map((box) => box.value) };
  }
  if (items.type !== "string") return null;
  const area = h("textarea", { name: path, placeholder: "one per line" }, (value || []).join("\n"));
  return {
    element: fieldBox(path, `${label(name, schema)} (one per line)`, area, true),
    read: () => area.value.split("\n").map((line) => line.trim()).filter(Boolean),
  };
}

// Lists of objects, maps and unions: edited as JSON, checked here for syntax and by the API for the rest.
function jsonField(path, name, schema, value) {
  const area = h("textarea", { name: path, rows: 4 }, JSON.stringify(value ?? null, null, 2));
  return {
    element: fieldBox(path, `${label(name, schema)} (JSON)`, area, true),
    read: () => {
      try {
        return JSON.parse(area.value);
      } catch {
        throw new ApiError(422, { detail: `${path}: not valid JSON`, errors: [{ path, message: "not valid JSON" }] });
      }
    },
  };
}

function objectField(path, name, schema, value, depth) {
  if (path === "character.personality") {
    const sliders = traitSliders(value || {});
    return { element: h("div", { class: "traits", dataset: { path } }, sliders.element), read: sliders.read };
  }
  const properties = schema.properties || {};
  const parts = Object.entries(properties).map(([key, property]) =>
    build(path ? `${path}.${key}` : key, key, property, value?.[key], depth + 1),
  );
  const body = parts.map((part) => part.element);
  const read = () => Object.fromEntries(Object.keys(properties).map((key, i) => [key, parts[i].read()]));
  // Top-level sections fold (their summary names them), so the form reads as a table of contents.
  const folded = depth === 1;
  const legend = folded || depth === 0 ? null : h("legend", {}, label(name, schema));
  const fieldset = h("fieldset", { dataset: { path } }, legend, body, h("span", { class: "field-error wide" }));
  const element = folded ? h("details", { dataset: { section: path } }, h("summary", {}, label(name, schema)), fieldset) : fieldset;
  return { element, read };
}

function build(path, name, raw, value, depth) {
  const inner = nullable(raw);
  if (inner) {
    const target = resolve(inner);
    if (target.type === "object" || target.properties) {
      // An optional section: on or off, as a whole.
      const enabled = h("input", { type: "checkbox", name: `${path}.enabled`, checked: value != null });
      const section = objectField(path, name, { ...target, title: raw.title }, value ?? {}, depth);
      section.element.hidden = value == null;
      enabled.addEventListener("change", () => (section.element.hidden = !enabled.checked));
      const element = h("div", { class: "wide" }, h("label", { class: "check" }, enabled, `${label(name, raw)} (on/off)`), section.element);
      return { element, read: () => (enabled.checked ? section.read() : null) };
    }
    const field = scalar(path, name, { ...resolve(inner), title: raw.title || inner.title }, value);
    if (field) return { element: field.element, read: () => (field.read() === "" ? null : field.read()) };
    return jsonField(path, name, raw, value);
  }
  const schema = resolve(raw);
  const merged = { ...schema, title: raw.title };
  if (schema.type === "object" && schema.properties) return objectField(path, name, merged, value, depth);
  if (schema.type === "array") return stringList(path, name, merged, value) || jsonField(path, name, merged, value);
  return scalar(path, name, merged, value) || jsonField(path, name, merged, value);
}

// The field an error names, or the nearest section above it (paths of list items go to the list).
function fieldFor(form, path) {
  const parts = path.split(".");
  for (let n = parts.length; n > 0; n--) {
    const found = form.querySelector(`[data-path="${CSS.escape(parts.slice(0, n).join("."))}"]`);
    if (found) return found;
  }
  return null;
}

function showErrors(form, errors) {
  for (const old of form.querySelectorAll(".invalid")) old.classList.remove("invalid");
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const error of errors) {
    const field = fieldFor(form, error.path);
    if (!field) continue;
    field.classList.add("invalid");
    const slot = field.querySelector(":scope > .field-error") || field.querySelector(".field-error");
    slot.textContent = [slot.textContent, error.path === field.dataset.path ? error.message : `${error.path}: ${error.message}`]
      .filter(Boolean)
      .join("; ");
    for (let open = field.closest("details"); open; open = open.parentElement.closest("details")) open.open = true;
  }
}

export async function editorPage(view, session, agentId) {
  const [agent] = await Promise.all([get(`/agents/${agentId}`), components()]);
  const root = build("", "config", { $ref: "#/components/schemas/AgentConfig" }, agent.config, 0);
  const form = h("form", { class: "editor", id: "editor", novalidate: true }, root.element);
  const status = h("span", { id: "save-status" });
  const save = async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      const updated = await api("PUT", `/agents/${agentId}`, root.read());
      showErrors(form, []);
      status.replaceChildren(notice("ok", `Saved ${updated.name}`));
    } catch (error) {
      showErrors(form, error.errors || []);
      status.replaceChildren(notice("error", error.message));
    }
  };
  form.addEventListener("submit", save);
  form.append(h("div", { class: "sticky-actions" }, h("button", { class: "primary", id: "save", type: "submit" }, "Save"), status));
  view.replaceChildren(h("h2", {}, `Edit ${agent.name}`), h("p", { class: "muted" }, `agent ${agent.agent_id}`), form, sandboxPanel(agent));
}
