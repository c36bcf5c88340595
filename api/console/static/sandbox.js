// The editor's test chat: the owner talks to the saved agent before deploying it (POST /agents/{id}/sandbox).
// Each answer shows the agent's decision (would it answer, and why) and what produced the reply.
import { api, attempt, h } from "./api.js";

// What the API keeps of the sandbox's history, and the longest message it takes.
const HISTORY = 20;
const LONGEST = 2000;

function source(answer) {
  if (answer.source === "model") return `Answered by the model ${answer.model}.`;
  if (answer.source === "persona")
    return answer.fallback_reason === "no_inference_endpoint"
      ? "No model endpoint is configured: the agent answered with its offline persona."
      : `The agent answered with its offline persona (${answer.fallback_reason}).`;
  if (answer.source === "platform") return "Answered by the platform (a command or a safety reply): no model involved.";
  return "The agent stays silent.";
}

function decided(decision) {
  if (!decision) return "A command: the agent answers it without a decision.";
  const chance = decision.probability == null ? "" : ` (chance ${Math.round(decision.probability * 100)}%)`;
  return `Decision: ${decision.respond ? "answer" : "stay silent"}, because ${decision.reason.replaceAll("_", " ")}${chance}.`;
}

export function sandboxPanel(agent) {
  const history = [];
  const log = h("div", { id: "sandbox-log", class: "chat" });
  const input = h("input", { id: "sandbox-input", maxlength: LONGEST, autocomplete: "off", placeholder: `Say something to ${agent.name}` });
  const mention = h("input", { type: "checkbox", id: "sandbox-mention", checked: true });
  const status = h("div", { id: "sandbox-status" });
  const line = (author, text) => h("div", { class: `line ${author}` }, h("b", {}, author === "owner" ? "You" : agent.name), " ", text);
  const send = async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    const body = { content, mention: mention.checked, history: history.slice(-HISTORY) };
    const answer = await attempt(status, () => api("POST", `/agents/${agent.agent_id}/sandbox`, body));
    if (!answer) return;
    input.value = "";
    history.push({ author: "owner", content });
    log.append(line("owner", content), h("div", { class: "meta decision" }, decided(answer.decision)));
    for (const reply of answer.replies) {
      history.push({ author: "agent", content: reply.slice(0, LONGEST) });
      log.append(line("agent", reply));
    }
    log.append(h("div", { class: "meta source", dataset: { source: answer.source } }, source(answer)));
  };
  return h(
    "section",
    { class: "panel", id: "sandbox" },
    h("h3", {}, "Test chat"),
    h("p", { class: "muted" }, "Talk to the saved agent in a channel of its own, as it would answer in Discord: nothing is deployed or sent. Save your changes first."),
    log,
    h("form", { class: "row", onsubmit: send }, h("label", {}, "Message", input), h("label", { class: "check" }, mention, "@mention the agent"), h("button", { class: "primary", id: "sandbox-send", type: "submit" }, "Send")),
    status,
  );
}
