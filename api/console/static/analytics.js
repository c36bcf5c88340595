// Analytics: the owner's own traffic from ClickHouse (GET /owners/{id}/analytics), as uPlot charts over a
// chosen range, per agent or guild.
import uPlot from "./vendor/uPlot.esm.js";
import { get, h, show } from "./api.js";

const RANGES = { "24h": [24 * 3600, "hour"], "7d": [7 * 86400, "hour"], "30d": [30 * 86400, "day"], "90d": [90 * 86400, "day"] };
const COLOURS = ["#5865f2", "#23a55a", "#f0b232", "#f23f43", "#eb459e"];
const CHARTS = [
  ["traffic", "Messages, replies and AI calls", ["messages_seen", "replies", "ai_calls"]],
  ["latency", "Reply latency (ms)", ["latency_p50_ms", "latency_p99_ms"]],
  ["cost", "AI cost (USD)", ["ai_cost_usd"]],
  ["users", "Active users", ["active_users"]],
];

function chart(id, title, fields, series, width) {
  // The total of its first series: what a test (or a script) reads to know the chart has data.
  const total = series.reduce((sum, point) => sum + (point[fields[0]] ?? 0), 0);
  const box = h("div", { class: "chart", id: `chart-${id}`, dataset: { total: String(total) } }, h("h3", {}, title));
  const data = [series.map((point) => Date.parse(point.t) / 1000), ...fields.map((field) => series.map((point) => point[field] ?? null))];
  const options = {
    width,
    height: 220,
    series: [{}, ...fields.map((field, i) => ({ label: field.replaceAll("_", " "), stroke: COLOURS[i], width: 2, points: { show: series.length < 60 } }))],
    axes: [{ stroke: "#949ba4", grid: { stroke: "#3f4147" } }, { stroke: "#949ba4", grid: { stroke: "#3f4147" } }],
  };
  new uPlot(options, data, box);
  return box;
}

function breakdown(id, title, rows) {
  if (!rows?.length) return h("section", { class: "panel", id }, h("h3", {}, title), h("p", { class: "muted" }, "No data in this range."));
  const columns = Object.keys(rows[0]);
  return h(
    "section",
    { class: "panel", id },
    h("h3", {}, title),
    h("table", {}, h("tr", {}, columns.map((c) => h("th", {}, c.replaceAll("_", " ")))), rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, row[c]))))),
  );
}

// Analytics are a feature of Pro and above (the tier table); below, the page offers the upgrade instead.
function upgradePrompt(limits) {
  return h(
    "section",
    { class: "panel", id: "analytics-upgrade" },
    h("p", {}, `Analytics are not part of the ${limits.tier} plan: they come with Pro and above.`),
    h("a", { class: "button primary", href: "#/billing" }, "See the plans"),
  );
}

export async function analyticsPage(view, session) {
  if (!session.me.limits.features.includes("analytics")) {
    show(view, h("h2", {}, "Analytics"), upgradePrompt(session.me.limits));
    return;
  }
  const agents = await get("/agents");
  const names = Object.fromEntries(agents.map((agent) => [agent.agent_id, agent.name]));
  const range = h("select", { id: "range" }, Object.keys(RANGES).map((name) => h("option", { value: name, selected: name === "24h" }, `last ${name}`)));
  const agent = h("select", { id: "agent-filter" }, h("option", { value: "" }, "all agents"), agents.map((a) => h("option", { value: a.agent_id }, a.name)));
  const guild = h("input", { id: "guild-filter", placeholder: "guild id (optional)" });
  const output = h("div", { id: "analytics" });
  const load = async () => {
    const [seconds, bucket] = RANGES[range.value];
    const to = new Date();
    const query = new URLSearchParams({ from: new Date(to - seconds * 1000).toISOString(), to: to.toISOString(), bucket });
    if (agent.value) query.set("agent_id", agent.value);
    if (guild.value.trim()) query.set("guild_id", guild.value.trim());
    const report = await get(`/owners/${session.me.owner.owner_id}/analytics?${query}`);
    const width = Math.max(480, Math.floor((document.getElementById("view").clientWidth - 24) / 2) - 24);
    const reasons = Object.entries(report.decisions_by_reason).map(([reason, count]) => ({ reason, count }));
    output.replaceChildren(
      h("div", { class: "charts" }, CHARTS.map(([id, title, fields]) => chart(id, title, fields, report.series, width))),
      breakdown("decisions-by-reason", "Decisions by reason", reasons),
      breakdown("by-agent", "Per agent", report.by_agent.map(({ agent_id, ...totals }) => ({ agent: names[agent_id] || agent_id, ...totals }))),
      breakdown("by-guild", "Per guild", report.by_guild),
    );
  };
  const refresh = h("button", { class: "primary", id: "refresh", onclick: load }, "Refresh");
  for (const control of [range, agent]) control.addEventListener("change", load);
  show(view,
    h("h2", {}, "Analytics"),
    h("div", { class: "panel row" }, h("label", {}, "Range", range), h("label", {}, "Agent", agent), h("label", {}, "Guild", guild), refresh),
    output,
  );
  await load();
}
