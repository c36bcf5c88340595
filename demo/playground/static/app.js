// The playground page: polls the local server, renders a Discord-like view, sends what the person types.
"use strict";

const MESSAGES_POLL_MS = 800;
const LIVE_POLL_MS = 1500;
// The owner's notifications come through the configuration API, whose rate limit is per key: poll slowly.
const NOTIFICATIONS_POLL_MS = 10000;
const MOOD_EMOJI = { excited: "🤩", happy: "😊", neutral: "🙂", sad: "😢", bored: "😴" };
const AVATAR_COLORS = ["#5865f2", "#eb459e", "#3ba55c", "#faa61a", "#ed4245", "#9b59b6", "#1abc9c", "#e67e22"];

const state = {
  session: null,
  channelId: null,
  messagesKey: "",
  live: null,
  selected: null, // deployment id of the agent in the panel
  commandBot: {}, // command name -> bot id picked in the suggestions
  suggestion: { items: [], index: 0 },
};

const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "html") node.innerHTML = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(describeError(data)), { status: response.status, data });
  return data;
}

function describeError(data) {
  if (!data) return "request failed";
  const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
  const fields = (data.errors || []).map((e) => `${e.path}: ${e.message}`).join("; ");
  return fields ? `${detail} (${fields})` : detail;
}

function colorOf(id) {
  let hash = 0;
  for (const c of String(id)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return AVATAR_COLORS[hash % AVATAR_COLORS.length];
}

function avatar(name, id, extraClass = "") {
  return el("div", { class: `avatar ${extraClass}`, style: `background:${colorOf(id)}`, text: (name || "?")[0].toUpperCase() });
}

function agents() {
  return state.session ? state.session.agents : [];
}

function agentById(deploymentId) {
  return agents().find((a) => a.deployment_id === deploymentId);
}

function liveOf(deploymentId) {
  return state.live ? state.live.agents.find((a) => a.deployment_id === deploymentId) : null;
}

function knownNames() {
  const names = agents().map((a) => a.name);
  if (state.session && state.session.guild) names.push(...state.session.guild.members.map((m) => m.name));
  return names.sort((a, b) => b.length - a.length);
}

function moodEmoji(agent, mood) {
  if (!mood) return "";
  const defined = agent.config.behavior && agent.config.behavior.mood && agent.config.behavior.mood.moods;
  return (defined && defined[mood.mood] && defined[mood.mood].emoji) || MOOD_EMOJI[mood.mood] || "";
}

// --- rendering: server, channels, people ---------------------------------------------------------------

function renderServer() {
  const { guild, you } = state.session;
  $("server-name").textContent = guild.name;
  $("server-icon").textContent = guild.name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2);
  $("server-icon").title = guild.name;
  const text = $("text-channels");
  const voice = $("voice-channels");
  text.replaceChildren();
  voice.replaceChildren();
  for (const channel of guild.channels) {
    if (channel.voice) {
      voice.append(el("li", { text: channel.name }));
      for (const member of guild.members.filter((m) => m.in_voice)) voice.append(el("li", { class: "in-voice", text: member.name }));
    } else {
      text.append(el("li", { "data-channel": channel.name, text: channel.name, onclick: () => selectChannel(channel.id) }));
    }
  }
  $("you").replaceChildren(avatar(you.name, you.id, "small"), el("span", { text: you.name }));
  const members = $("members");
  members.replaceChildren(
    ...guild.members.map((m) => el("li", {}, [avatar(m.name, m.id, "small"), el("span", { text: m.name + (m.id === you.id ? " (you)" : "") })])),
  );
  $("member-count").textContent = `— ${guild.members.length}`;
}

// The agents' list is updated in place: rebuilding it every poll would swap the element under a click.
function renderAgents() {
  const list = $("agents");
  for (const agent of agents()) {
    let item = list.querySelector(`li[data-deployment="${agent.deployment_id}"]`);
    if (!item) {
      item = el("li", { "data-deployment": agent.deployment_id, onclick: () => openPanel(agent.deployment_id) }, [
        el("div", { class: "presence" }, [avatar(agent.name, agent.bot_id, "small")]),
        el("div", { class: "who" }, [el("div", { class: "name" }), el("div", { class: "sub" })]),
        el("span", { class: "mood" }),
      ]);
      list.append(item);
    }
    const live = liveOf(agent.deployment_id);
    const presence = live ? live.presence : "unknown";
    item.dataset.agent = agent.name;
    item.title = `${agent.name}: ${presence}`;
    item.classList.toggle("active", agent.deployment_id === state.selected);
    item.querySelector(".presence").className = `presence ${presence}`;
    item.querySelector(".name").textContent = agent.name;
    item.querySelector(".sub").textContent = [agent.config.mode.replace("_", " "), live && live.status_text].filter(Boolean).join(" · ");
    const mood = item.querySelector(".mood");
    mood.textContent = moodEmoji(agent, live && live.mood);
    mood.title = live && live.mood ? live.mood.mood : "";
  }
  $("agent-count").textContent = `— ${agents().length}`;
}

// --- messages -------------------------------------------------------------------------------------------

function highlighted(text) {
  let html = escapeHtml(text);
  for (const name of knownNames()) {
    const pattern = new RegExp(`@${escapeHtml(name).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w])`, "g");
    html = html.replace(pattern, (match) => `<span class="mention">${match}</span>`);
  }
  return html;
}

// Which path wrote an AI reply: the model (and endpoint) or the offline persona responder (and why).
function answeredBy(answer) {
  if (answer.fallback) return `offline persona responder${answer.reason ? ` (${answer.reason})` : ""}`;
  return `generated by ${answer.model}${answer.endpoint ? ` on ${answer.endpoint}` : ""}`;
}

function renderMessage(message) {
  const time = new Date(message.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const body = [];
  if (message.replying_to) body.push(el("div", { class: "command-line", html: `↪ replying to <b>${escapeHtml(message.replying_to)}</b>` }));
  if (message.command) body.push(el("div", { class: "command-line", html: `used <b>${escapeHtml(message.command)}</b>` }));
  body.push(
    el("div", { class: "meta" }, [
      el("span", { class: "author", text: message.author_name }),
      ...(message.bot ? [el("span", { class: "bot-tag", text: "APP" })] : []),
      el("span", { class: "time", text: time }),
    ]),
  );
  if (message.content) body.push(el("div", { class: "content", html: highlighted(message.content) }));
  for (const embed of message.embeds) {
    body.push(
      el("div", { class: "embed" }, [
        ...(embed.title ? [el("div", { class: "embed-title", text: embed.title })] : []),
        ...(embed.description ? [el("div", { class: "embed-description", html: highlighted(embed.description) })] : []),
      ]),
    );
  }
  if (message.ephemeral) body.push(el("div", { class: "ephemeral-note", text: "Only you can see this" }));
  if (message.answered_by) body.push(el("div", { class: "answered-by", text: answeredBy(message.answered_by) }));
  return el(
    "div",
    {
      class: `message${message.mentions_you ? " mentions-you" : ""}`,
      "data-id": message.id,
      "data-author": message.author_name,
      "data-bot": message.bot ? "true" : "false",
      "data-reply-to": message.replying_to || undefined,
      "data-answered-by": message.answered_by ? (message.answered_by.fallback ? "fallback" : "model") : undefined,
    },
    [avatar(message.author_name, message.author_id), el("div", {}, body)],
  );
}

async function pollMessages() {
  if (!state.channelId) return;
  const channelId = state.channelId;
  try {
    const messages = await api("GET", `/api/channels/${channelId}/messages`);
    if (channelId !== state.channelId) return;
    const key = JSON.stringify(messages.map((m) => [m.id, m.content, m.embeds, m.answered_by]));
    if (key === state.messagesKey) return;
    const first = state.messagesKey === "";
    state.messagesKey = key;
    const box = $("messages");
    const atBottom = first || box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    box.replaceChildren(...(messages.length ? messages.map(renderMessage) : [el("div", { class: "empty", text: "No messages yet. Say hi!" })]));
    if (atBottom) box.scrollTop = box.scrollHeight;
  } catch (error) {
    console.warn("messages", error);
  }
}

function selectChannel(channelId) {
  const channel = state.session.guild.channels.find((c) => c.id === channelId);
  state.channelId = channelId;
  state.messagesKey = "";
  $("messages").replaceChildren();
  $("channel-title").textContent = `# ${channel.name}`;
  $("channel-topic").textContent = channel.topic;
  $("input").placeholder = `Message #${channel.name} — try /play lofi, @Luna hi, !queue`;
  for (const li of $("text-channels").children) li.classList.toggle("active", li.dataset.channel === channel.name);
  pollMessages();
}

// --- composer -------------------------------------------------------------------------------------------

function commandsOf(config) {
  return [...new Set([...config.enabled_commands, ...config.custom_commands.map((c) => c.name)])];
}

function commandChoices() {
  const choices = [];
  for (const agent of agents()) {
    for (const name of commandsOf(agent.config)) choices.push({ label: `/${name}`, hint: agent.name, insert: `/${name} `, command: name, bot: agent.bot_id });
  }
  return choices;
}

function mentionChoices() {
  return knownNames().map((name) => ({ label: `@${name}`, hint: agents().some((a) => a.name === name) ? "agent" : "member", insert: `@${name} ` }));
}

function updateSuggestions() {
  const input = $("input");
  const value = input.value;
  let items = [];
  let replaceFrom = 0;
  const slash = value.match(/^\/([\w-]*)$/);
  const mention = value.match(/(^|\s)@([\w ]{0,20})$/);
  if (slash) {
    items = commandChoices().filter((c) => c.command.startsWith(slash[1].toLowerCase()));
  } else if (mention) {
    const typed = mention[2].toLowerCase();
    items = mentionChoices().filter((c) => c.label.slice(1).toLowerCase().startsWith(typed));
    replaceFrom = value.length - mention[2].length - 1;
  }
  state.suggestion = { items: items.slice(0, 12), index: 0, replaceFrom };
  const box = $("suggestions");
  box.hidden = !state.suggestion.items.length;
  box.replaceChildren(
    el(
      "ul",
      {},
      state.suggestion.items.map((item, index) =>
        el("li", { class: index === 0 ? "active" : "", onmousedown: (event) => { event.preventDefault(); choose(index); } }, [
          el("span", { text: item.label }),
          el("span", { class: "hint", text: item.hint }),
        ]),
      ),
    ),
  );
}

function choose(index) {
  const item = state.suggestion.items[index];
  if (!item) return;
  const input = $("input");
  input.value = input.value.slice(0, state.suggestion.replaceFrom) + item.insert;
  if (item.command) state.commandBot[item.command] = item.bot;
  $("suggestions").hidden = true;
  input.focus();
}

async function send(event) {
  event.preventDefault();
  const input = $("input");
  const content = input.value.trim();
  if (!content || !state.channelId) return;
  const errorBox = $("compose-error");
  errorBox.hidden = true;
  const slash = content.match(/^\/([\w-]+)/);
  const body = { content };
  if (slash && state.commandBot[slash[1].toLowerCase()]) body.bot_id = state.commandBot[slash[1].toLowerCase()];
  try {
    await api("POST", `/api/channels/${state.channelId}/messages`, body);
    input.value = "";
    $("suggestions").hidden = true;
    pollMessages();
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.hidden = false;
  }
}

function onKey(event) {
  const box = $("suggestions");
  if (box.hidden) return;
  const { items } = state.suggestion;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    state.suggestion.index = (state.suggestion.index + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
    [...box.querySelectorAll("li")].forEach((li, i) => li.classList.toggle("active", i === state.suggestion.index));
  } else if (event.key === "Tab") {
    event.preventDefault();
    choose(state.suggestion.index);
  } else if (event.key === "Escape") {
    box.hidden = true;
  }
}

// --- live: counters, feeds, the agent panel -----------------------------------------------------------

function agentName(deploymentId) {
  const agent = agentById(deploymentId);
  return agent ? agent.name : deploymentId.slice(0, 8);
}

function decisionItem(d, withAgent) {
  const who = withAgent ? `<b>${escapeHtml(agentName(d.deployment_id))}</b> ` : "";
  const verdict = d.respond ? `answers (${d.priority || "—"})` : "stays silent";
  const about = d.reason === "own_message" ? "its own message" : d.author_name ? `to ${escapeHtml(d.author_name)}` : d.reason === "other_bot" ? "another bot" : "";
  const where = [about, d.channel_name && `in #${escapeHtml(d.channel_name)}`].filter(Boolean).join(" ");
  return el("li", {
    class: `decision ${d.respond ? "respond" : "silent"}`,
    "data-reason": d.reason,
    html: `${who}${verdict} · <b>${escapeHtml(d.reason.replace(/_/g, " "))}</b> ${where}`,
    title: new Date(d.at).toLocaleTimeString(),
  });
}

function renderLive() {
  const live = state.live;
  const c = live.counters;
  $("counters").replaceChildren(
    ...[
      ["events/s", c.events_per_s.toFixed(1)],
      ["decisions", c.decisions],
      ["replies", c.replies],
      ["AI calls", c.ai_fallbacks ? `${c.ai_calls} (${c.ai_fallbacks} offline)` : c.ai_calls],
    ].map(([label, value]) => el("span", { class: "counter", "data-counter": label, html: `${label} <b>${escapeHtml(value)}</b>` })),
  );
  // The global feed leaves out decisions about bots' messages (each AI agent sees every other bot's); the
  // agent panel shows them all.
  const notable = live.decisions.filter((d) => d.reason !== "own_message" && d.reason !== "other_bot");
  $("decisions-feed").replaceChildren(...notable.slice(0, 12).map((d) => decisionItem(d, true)));
  $("moderation").replaceChildren(
    ...(live.moderation.length
      ? live.moderation.slice(0, 10).map((m) =>
          el("li", {
            class: "moderation-entry",
            "data-rule": m.rule,
            html: `<b>${escapeHtml(agentName(m.deployment_id))}</b> ${escapeHtml(m.actions.join(" + "))} <b>${escapeHtml(m.user_name || m.user_id)}</b> · ${escapeHtml(m.rule)}${m.reason ? `: ${escapeHtml(m.reason)}` : ""}`,
          }),
        )
      : [el("li", { text: "nothing yet" })]),
  );
  $("processes").replaceChildren(
    ...live.processes.map((p) =>
      el("li", {
        class: p.running ? "" : "down",
        title: p.log,
        html: `<b>${escapeHtml(p.name)}</b> ${p.running ? `pid ${p.pid}` : "stopped"}${p.restarts ? ` · ${p.restarts} restarts` : ""}`,
      }),
    ),
  );
  renderAgents();
  if (state.selected) renderPanelState();
}

async function pollLive() {
  try {
    state.live = await api("GET", "/api/live");
    renderLive();
  } catch (error) {
    console.warn("live", error);
  }
}

async function pollNotifications() {
  try {
    const notifications = await api("GET", "/api/notifications");
    $("notifications").replaceChildren(
      ...(notifications.length
        ? notifications.map((n) =>
            el("li", {
              class: "notification",
              "data-kind": n.kind,
              title: new Date(n.at).toLocaleString(),
              html: `<b>${escapeHtml(n.kind.replace(/_/g, " "))}</b> ${escapeHtml(n.message)}`,
            }),
          )
        : [el("li", { text: "nothing yet" })]),
    );
  } catch (error) {
    console.warn("notifications", error);
  }
}

function bar(value, max) {
  const percent = Math.max(0, Math.min(100, (value / max) * 100));
  return `<div class="bar"><span style="width:${percent}%"></span></div>`;
}

function renderPanelState() {
  const agent = agentById(state.selected);
  const live = liveOf(state.selected);
  if (!agent || !live) return;
  const rows = [["Presence", `${live.presence}${live.status_text ? ` · ${escapeHtml(live.status_text)}` : ""}`]];
  if (agent.config.ai_config) {
    rows.push(
      ["Mood", live.mood ? `${moodEmoji(agent, live.mood)} ${live.mood.mood} · energy ${live.mood.energy.toFixed(2)}${bar(live.mood.valence + 1, 2)}` : "not met anyone yet"],
    );
    if (state.session.you) {
      rows.push(["Affinity with you", live.affinity ? `<span id="affinity-you">${live.affinity.affinity}</span>/100 · ${live.affinity.interactions} talks${bar(live.affinity.affinity, 100)}` : "you have not talked yet"]);
    }
    if (live.relationships.length) {
      rows.push(["Knows best", live.relationships.map((r) => `${escapeHtml(r.name)} (${r.affinity})`).join(", ")]);
    }
  }
  rows.push(["Decisions", live.decisions], ["Replies", live.replies], ["AI calls", live.ai_fallbacks ? `${live.ai_calls} (${live.ai_fallbacks} by the persona responder)` : live.ai_calls]);
  $("panel-state").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  renderPanelRecalled(agent, live);
}

// The long-term memories the agent's latest AI reply was written with, best first.
function renderPanelRecalled(agent, live) {
  const items = live.recalled.map((m) => el("li", {
    text: `${m.author_name || "someone"}: ${m.text}`,
    title: `${m.kind} · ${new Date(m.at).toLocaleString()} · score ${m.score.toFixed(2)}`,
  }));
  const empty = agent.config.ai_config && agent.config.memory.enabled ? "nothing recalled yet" : "no long-term memory";
  $("panel-recalled").replaceChildren(...(items.length ? items : [el("li", { text: empty })]));
}

function renderPanelConfig(agent) {
  const config = agent.config;
  const triggers = config.behavior.response_triggers;
  const rows = [
    ["Mode", config.mode.replace("_", " ")],
    ["AI", config.ai_config ? `${escapeHtml(config.ai_config.text_model)} · ${config.ai_config.usage}` : "disabled"],
    ["Tools", config.enabled_tools.join(", ") || "—"],
    ["Commands", commandsOf(config).map((c) => `${escapeHtml(config.command_prefix)}${c}`).join(" ") || "—"],
  ];
  if (config.ai_config) {
    rows.push(["Answers", Object.entries(triggers).filter(([, t]) => t.enabled && t.probability > 0).map(([name, t]) => `${name.replace("_", " ")} ${Math.round(t.probability * 100)}%`).join(", ")]);
  }
  if (config.automod) {
    rows.push(["Auto-mod", Object.entries(config.automod).filter(([, rule]) => rule.enabled).map(([name, rule]) => `${name} → ${rule.actions.join("+")}`).join(", ")]);
  }
  if (config.character) {
    rows.push(["Catchphrases", `<span id="catchphrases-shown">${config.character.catchphrases.map(escapeHtml).join(" · ") || "—"}</span>`]);
  }
  $("panel-config").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  const character = config.character;
  $("edit-catchphrases").value = character ? character.catchphrases.join("\n") : "";
  $("edit-interests").value = character ? character.interests.join("\n") : "";
  $("edit-catchphrases").disabled = $("edit-interests").disabled = !character;
  $("edit-prefix").value = config.command_prefix;
  $("edit-description").value = config.description;
  $("edit-json").value = JSON.stringify(config, null, 2);
}

async function loadPanelDecisions() {
  if (!state.selected) return;
  const deploymentId = state.selected;
  try {
    const decisions = await api("GET", `/api/agents/${deploymentId}/decisions`);
    if (deploymentId !== state.selected) return;
    $("panel-decisions").replaceChildren(...(decisions.length ? decisions.map((d) => decisionItem(d, false)) : [el("li", { text: "no decisions yet" })]));
  } catch (error) {
    console.warn("decisions", error);
  }
}

function openPanel(deploymentId) {
  const agent = agentById(deploymentId);
  state.selected = deploymentId;
  $("panel").hidden = false;
  $("app").classList.add("panel-open");
  $("panel-name").textContent = agent.name;
  $("panel-mode").textContent = agent.config.description || agent.config.mode;
  $("config-status").textContent = "";
  renderPanelConfig(agent);
  renderPanelState();
  renderAgents();
  loadPanelDecisions();
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

async function saveConfig(config) {
  const status = $("config-status");
  status.className = "";
  status.textContent = "saving…";
  try {
    const updated = await api("PUT", `/api/agents/${state.selected}/config`, config);
    const index = state.session.agents.findIndex((a) => a.deployment_id === updated.deployment_id);
    state.session.agents[index] = updated;
    renderPanelConfig(updated);
    status.className = "ok";
    status.textContent = "Saved: the agent uses it from the next message.";
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}

function saveForm(event) {
  event.preventDefault();
  const config = structuredClone(agentById(state.selected).config);
  if (config.character) {
    config.character.catchphrases = lines($("edit-catchphrases").value);
    config.character.interests = lines($("edit-interests").value);
  }
  config.command_prefix = $("edit-prefix").value.trim();
  config.description = $("edit-description").value.trim();
  saveConfig(config);
}

function saveJson() {
  try {
    saveConfig(JSON.parse($("edit-json").value));
  } catch (error) {
    $("config-status").className = "error";
    $("config-status").textContent = `not JSON: ${error.message}`;
  }
}

// --- start ----------------------------------------------------------------------------------------------

async function start() {
  state.session = await api("GET", "/api/session");
  const app = $("app");
  app.classList.remove("loading");
  const notice = $("ai-notice");
  notice.textContent = state.session.ai.description;
  notice.classList.toggle("online", !state.session.ai.offline);
  notice.hidden = false;
  $("panel-close").addEventListener("click", () => {
    $("panel").hidden = true;
    $("app").classList.remove("panel-open");
    state.selected = null;
    renderAgents();
  });
  $("config-form").addEventListener("submit", saveForm);
  $("save-json").addEventListener("click", saveJson);
  if (state.session.mode === "follow") {
    app.classList.add("follow", "read-only");
    $("panel-close").hidden = true;
    openPanel(state.session.agents[0].deployment_id);
  } else {
    renderServer();
    $("composer").addEventListener("submit", send);
    $("input").addEventListener("input", updateSuggestions);
    $("input").addEventListener("keydown", onKey);
    selectChannel(state.session.guild.channels.find((c) => !c.voice).id);
    setInterval(pollMessages, MESSAGES_POLL_MS);
    await pollNotifications();
    setInterval(pollNotifications, NOTIFICATIONS_POLL_MS);
  }
  renderAgents();
  await pollLive();
  setInterval(pollLive, LIVE_POLL_MS);
  setInterval(loadPanelDecisions, LIVE_POLL_MS * 2);
}

start().catch((error) => {
  document.body.textContent = `The playground could not start: ${error.message}`;
});
