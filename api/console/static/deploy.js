// Deploying: bot tokens (validated by the API, never shown again), the guild and channels, the deployments'
// start/pause/resume, token health and tier limits; and the inbox of owner notifications.
import { api, attempt, get, h, show, when } from "./api.js";
import { go } from "./app.js";

// A checkbox per channel of one kind; the checked ones are the deployment's.
function channelChoices(id, channels) {
  return h(
    "fieldset",
    { id, class: "channels" },
    channels.length ? channels.map((channel) => h("label", { class: "check" }, h("input", { type: "checkbox", value: channel.id }), `#${channel.name}`)) : h("span", { class: "muted" }, "none"),
  );
}

function checked(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((input) => input.value);
}

// The server's text and voice channels, read through one of the owner's bots there.
async function channelPicker(guildId) {
  const text = channelChoices("deploy-text-channels", []);
  const voice = channelChoices("deploy-voice-channels", []);
  const picker = { guildId, text, voice, element: h("div", { id: "deploy-channels", class: "row" }, h("span", { class: "muted" }, "Pick a server")) };
  if (!guildId) return picker;
  try {
    const channels = await get(`/auth/discord/guilds/${guildId}/channels`);
    picker.text = channelChoices("deploy-text-channels", channels.filter((c) => c.kind === "text"));
    picker.voice = channelChoices("deploy-voice-channels", channels.filter((c) => c.kind === "voice"));
    picker.element.replaceChildren(
      h("label", {}, "Text channels (none ticked: every channel)", picker.text),
      h("label", {}, "Voice channels", picker.voice),
    );
  } catch (error) {
    picker.element.replaceChildren(h("div", { class: "message error", id: "channels-error" }, error.message));
  }
  return picker;
}

function tokensPanel(tokens) {
  const secret = h("input", { type: "password", id: "token-input", autocomplete: "off", placeholder: "bot token" });
  const status = h("div", { id: "token-status" });
  const add = async () => {
    const added = await attempt(status, () => api("POST", "/tokens", { token: secret.value }));
    // The token leaves the page once sent: the API keeps it in the vault and never returns it.
    secret.value = "";
    if (added) go("#/deploy");
  };
  const check = (token) => attempt(status, () => api("POST", `/tokens/${token.token_id}/check`), "Checked").then(() => go("#/deploy"));
  return h(
    "section",
    { class: "panel" },
    h("h3", {}, "Bot tokens"),
    h(
      "table",
      { id: "tokens" },
      h("tr", {}, ["bot", "status", "tier", "guilds", "failures", "last validated", ""].map((name) => h("th", {}, name))),
      tokens.map((token) =>
        h(
          "tr",
          { dataset: { tokenId: token.token_id } },
          h("td", {}, token.bot_username || token.bot_user_id),
          h("td", { class: `status ${token.status}` }, token.status),
          h("td", {}, token.tier),
          h("td", {}, token.guilds_count),
          h("td", {}, token.failure_count),
          h("td", {}, when(token.last_validated)),
          h("td", {}, h("button", { class: "check", onclick: () => check(token) }, "Check now")),
        ),
      ),
    ),
    h("div", { class: "row" }, h("label", {}, "Add a bot token (checked with Discord, then stored; never shown again)", secret), h("button", { class: "primary", id: "add-token", onclick: add }, "Add token")),
    status,
  );
}

// The servers the person manages (read at sign-in), or an empty list and why not.
async function managedGuilds(status) {
  try {
    const guilds = await get("/auth/discord/guilds");
    if (!guilds.length) status.replaceChildren(h("div", { class: "message error" }, "You manage no Discord server: sign in with the account that owns or manages one."));
    return guilds;
  } catch (error) {
    status.replaceChildren(h("div", { class: "message error" }, `Your servers could not be read: ${error.message}`));
    return [];
  }
}

async function deployForm(agents, tokens, guilds, status, chosenAgent) {
  const agent = h("select", { id: "deploy-agent" }, agents.map((a) => h("option", { value: a.agent_id, selected: a.agent_id === chosenAgent }, a.name)));
  const token = h("select", { id: "deploy-token" }, tokens.map((t) => h("option", { value: t.token_id }, t.bot_username || t.bot_user_id)));
  const guild = h("select", { id: "deploy-guild" }, guilds.map((g) => h("option", { value: g.id }, `${g.name}${g.bot_present ? "" : " (no bot yet)"}`)));
  let picker = await channelPicker(guild.value);
  guild.addEventListener("change", async () => {
    if (guild.value === picker.guildId) return;
    const chosen = await channelPicker(guild.value);
    picker.element.replaceWith(chosen.element);
    picker = chosen;
  });
  const deploy = async () => {
    const body = { guild_id: guild.value, token_id: token.value, text_channels: checked(picker.text), voice_channels: checked(picker.voice) };
    const done = await attempt(status, () => api("POST", `/agents/${agent.value}/deployments`, body));
    if (done) go("#/deploy");
  };
  return h(
    "section",
    { class: "panel" },
    h("h3", {}, "Deploy an agent"),
    h(
      "div",
      { class: "row" },
      h("label", {}, "Agent", agent),
      h("label", {}, "Bot", token),
      h("label", {}, "Server", guild),
      h("button", { class: "primary", id: "deploy", onclick: deploy, disabled: !agents.length || !tokens.length }, "Deploy"),
    ),
    picker.element,
    status,
  );
}

function deploymentsPanel(deployments, agents, guilds) {
  const names = Object.fromEntries(agents.map((agent) => [agent.agent_id, agent.name]));
  const guildNames = Object.fromEntries(guilds.map((guild) => [guild.id, guild.name]));
  const status = h("div", { id: "deployments-status" });
  const change = (deployment, body) => attempt(status, () => api("PATCH", `/deployments/${deployment.deployment_id}`, body)).then((done) => done && go("#/deploy"));
  const remove = (deployment) => attempt(status, () => api("DELETE", `/deployments/${deployment.deployment_id}`)).then(() => go("#/deploy"));
  const actions = (deployment) =>
    deployment.status === "active"
      ? h("button", { class: "pause", onclick: () => change(deployment, { status: "paused" }) }, "Pause")
      : h("button", { class: "resume primary", onclick: () => change(deployment, { status: "active" }) }, deployment.status === "paused" ? "Resume" : "Start");
  return h(
    "section",
    { class: "panel" },
    h("h3", {}, "Deployments"),
    h(
      "table",
      { id: "deployments" },
      h("tr", {}, ["agent", "server", "channels", "status", "since", ""].map((name) => h("th", {}, name))),
      deployments.map((deployment) =>
        h(
          "tr",
          { dataset: { deploymentId: deployment.deployment_id, agent: names[deployment.agent_id] || "" } },
          h("td", {}, names[deployment.agent_id] || deployment.agent_id),
          h("td", {}, guildNames[deployment.guild_id] || deployment.guild_id),
          h("td", {}, deployment.text_channels.join(", ") || "all"),
          h("td", { class: `status ${deployment.status}` }, deployment.status),
          h("td", {}, when(deployment.deployed_at)),
          h("td", {}, actions(deployment), " ", h("button", { class: "danger", onclick: () => remove(deployment) }, "Undeploy")),
        ),
      ),
    ),
    status,
  );
}

function limitsPanel(me) {
  const { limits, usage } = me;
  const row = (name, used, limit) => h("tr", {}, h("td", {}, name), h("td", {}, used), h("td", {}, limit ?? "unlimited"));
  return h(
    "section",
    { class: "panel", id: "limits" },
    h("h3", {}, `Tier: ${limits.tier}`),
    h(
      "table",
      {},
      h("tr", {}, h("th", {}, ""), h("th", {}, "used"), h("th", {}, "limit")),
      row("agents", usage.agents, limits.agent_slots),
      row(`AI calls (${usage.period})`, usage.ai_calls, limits.monthly_ai_calls),
    ),
    h("p", { class: "muted" }, `Tools: ${[...limits.tools].sort().join(", ")}`),
    h("p", { class: "muted" }, `Features: ${[...limits.features].sort().join(", ") || "none"}`),
  );
}

export async function deployPage(view, session) {
  const chosen = new URLSearchParams(location.hash.split("?")[1] || "").get("agent");
  const status = h("div", { id: "deploy-status" });
  const [agents, tokens, deployments, guilds] = await Promise.all([get("/agents"), get("/tokens"), get("/deployments"), managedGuilds(status)]);
  show(view,
    h("h2", {}, "Deploy"),
    limitsPanel(session.me),
    tokensPanel(tokens),
    await deployForm(agents, tokens, guilds, status, chosen),
    deploymentsPanel(deployments, agents, guilds),
  );
}

function notifications(session) {
  return get(`/owners/${session.me.owner.owner_id}/notifications`);
}

export async function inboxPage(view, session) {
  const items = await notifications(session);
  localStorage.setItem("inbox-seen", String(items.length));
  show(view,
    h("h2", {}, "Inbox"),
    h("p", { class: "muted" }, "Revoked tokens, spent AI quotas and reported messages."),
    items.length
      ? h(
          "table",
          { id: "inbox" },
          h("tr", {}, ["when", "kind", "message"].map((name) => h("th", {}, name))),
          items.map((item) => h("tr", { dataset: { kind: item.kind } }, h("td", {}, when(item.at)), h("td", {}, item.kind), h("td", {}, item.message))),
        )
      : h("p", { id: "inbox-empty" }, "Nothing to report."),
  );
}

// The navigation's badge: notifications since the inbox was last opened in this browser.
export async function refreshInboxCount(session) {
  const badge = document.getElementById("inbox-count");
  try {
    const unseen = (await notifications(session)).length - Number(localStorage.getItem("inbox-seen") || 0);
    badge.textContent = String(unseen);
    badge.hidden = unseen <= 0;
  } catch {
    badge.hidden = true;
  }
}
