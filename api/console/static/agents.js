// Agents: the owner's list, and new ones from the mode templates, the presets or an imported character card.
import { api, attempt, get, h, show, when } from "./api.js";
import { go } from "./app.js";

function agentCard(agent, status) {
  const config = agent.config;
  return h(
    "div",
    { class: "card", dataset: { agent: agent.name, agentId: agent.agent_id } },
    h("span", { class: "name" }, agent.name),
    h("span", { class: "meta" }, `${config.mode}${agent.import_format ? ` · imported ${agent.import_format}` : ""}`),
    h("span", { class: "meta" }, config.description || config.character?.bio || ""),
    h("span", { class: "meta" }, `updated ${when(agent.updated_at)}`),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button primary", href: `#/agents/${agent.agent_id}` }, "Edit"),
      h("a", { class: "button", href: `#/deploy?agent=${agent.agent_id}` }, "Deploy"),
      h("a", { class: "button", href: `/agents/${agent.agent_id}/export?format=v3`, download: `${agent.name}.json` }, "Export"),
      h(
        "button",
        {
          class: "publish",
          onclick: () =>
            attempt(status, () => api("POST", "/gallery", { agent_id: agent.agent_id }), `${agent.name} is in the gallery`),
        },
        "Publish",
      ),
      h(
        "button",
        {
          class: "danger",
          onclick: async () => {
            if (!confirm(`Delete ${agent.name}? Its deployments stop.`)) return;
            await attempt(status, () => api("DELETE", `/agents/${agent.agent_id}`));
            go("#/agents");
          },
        },
        "Delete",
      ),
    ),
  );
}

function fromTemplate(presets, status) {
  const choice = h(
    "select",
    { id: "template" },
    ...presets.map((preset) =>
      h("option", { value: preset.name }, `${preset.kind === "mode" ? "Mode template" : "Preset"}: ${preset.name} — ${preset.description}`),
    ),
  );
  const create = async () => {
    const preset = presets.find((p) => p.name === choice.value);
    const agent = await attempt(status, () => api("POST", "/agents", preset.config));
    if (agent) go(`#/agents/${agent.agent_id}`);
  };
  return h("div", { class: "row" }, h("label", {}, "Start from a mode template or a preset", choice), h("button", { class: "primary", id: "create", onclick: create }, "Create"));
}

function fromCard(status) {
  const file = h("input", { type: "file", id: "card-file", accept: ".png,.json,image/png,application/json" });
  const importCard = async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    const type = chosen.name.toLowerCase().endsWith(".png") ? "image/png" : "application/json";
    const agent = await attempt(status, async () => api("POST", "/agents/import", await chosen.arrayBuffer(), type));
    if (agent) go(`#/agents/${agent.agent_id}`);
  };
  return h(
    "div",
    { class: "row" },
    h("label", {}, "Import a character card (PNG or JSON: Character Card V2/V3, ElizaOS)", file),
    h("button", { id: "import", onclick: importCard }, "Import"),
  );
}

export async function agentsPage(view, session) {
  const [agents, presets] = await Promise.all([get("/agents"), get("/presets")]);
  const status = h("div", { id: "agents-status" });
  const { usage } = session.me;
  show(view,
    h("h2", {}, "Agents"),
    h("p", { class: "muted", id: "slots" }, `${usage.agents} of ${usage.agent_slots ?? "unlimited"} agent slots used`),
    status,
    h("div", { class: "grid", id: "agents" }, agents.map((agent) => agentCard(agent, status))),
    agents.length ? null : h("p", { class: "muted" }, "No agents yet: create one below."),
    h("section", { class: "panel" }, h("h3", {}, "New agent"), fromTemplate(presets, status), h("br"), fromCard(status)),
  );
}
