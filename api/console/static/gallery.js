// The gallery: characters owners published as V3 cards; browse, preview, deploy a copy, unpublish one's own.
import { api, attempt, get, h, show, when } from "./api.js";
import { go } from "./app.js";

function preview(entry, card) {
  const data = card.data || {};
  return h(
    "div",
    { class: "panel card-preview", id: "gallery-preview", dataset: { galleryId: entry.gallery_id } },
    h("h3", {}, data.name || entry.name),
    h("p", {}, data.description || ""),
    data.personality ? h("p", { class: "muted" }, `Personality: ${data.personality}`) : null,
    data.scenario ? h("p", { class: "muted" }, `Scenario: ${data.scenario}`) : null,
    data.first_mes ? h("p", {}, h("b", {}, "First message: "), data.first_mes) : null,
    data.tags?.length ? h("p", { class: "muted" }, `Tags: ${data.tags.join(", ")}`) : null,
    h("details", {}, h("summary", {}, "The card (JSON)"), h("pre", {}, JSON.stringify(card, null, 2))),
  );
}

export async function galleryPage(view) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const search = h("input", { id: "gallery-search", value: query.get("q") || "", placeholder: "search names and descriptions" });
  const page = Number(query.get("page") || 1);
  const listing = await get(`/gallery?${new URLSearchParams({ q: search.value, page: String(page) })}`);
  const entries = listing.items;
  const status = h("div", { id: "gallery-status" });
  const shown = h("div", { id: "gallery-shown" });
  const showCard = async (entry) => {
    const full = await attempt(status, () => get(`/gallery/${entry.gallery_id}`));
    if (full) shown.replaceChildren(preview(entry, full.card));
  };
  const copy = async (entry) => {
    const agent = await attempt(status, () => api("POST", `/gallery/${entry.gallery_id}/copies`));
    if (agent) go(`#/agents/${agent.agent_id}`);
  };
  const unpublish = async (entry) => {
    if (await attempt(status, () => api("DELETE", `/gallery/${entry.gallery_id}`), `${entry.name} left the gallery`) !== undefined) go("#/gallery");
  };
  const find = () => go(`#/gallery?${new URLSearchParams({ q: search.value.trim() })}`);
  search.addEventListener("keydown", (event) => event.key === "Enter" && find());
  show(view,
    h("h2", {}, "Gallery"),
    h("p", { class: "muted" }, "Characters other owners shared. Publish your own from the Agents page."),
    h("div", { class: "panel row" }, h("label", {}, "Search", search), h("button", { class: "primary", onclick: find }, "Search")),
    status,
    h(
      "div",
      { class: "grid", id: "gallery" },
      entries.map((entry) =>
        h(
          "div",
          { class: "card", dataset: { galleryId: entry.gallery_id, name: entry.name } },
          h("span", { class: "name" }, entry.name),
          h("span", { class: "meta" }, entry.description || ""),
          h("span", { class: "meta" }, `${entry.by_you ? "yours · " : ""}published ${when(entry.published_at)}`),
          h(
            "div",
            { class: "actions" },
            h("button", { class: "preview", onclick: () => showCard(entry) }, "Preview"),
            h("button", { class: "copy primary", onclick: () => copy(entry) }, "Deploy a copy"),
            entry.by_you ? h("button", { class: "unpublish danger", onclick: () => unpublish(entry) }, "Unpublish") : null,
          ),
        ),
      ),
    ),
    entries.length ? null : h("p", { class: "muted", id: "gallery-empty" }, "Nothing published matches."),
    h(
      "div",
      { class: "row" },
      page > 1 ? h("a", { class: "button", href: `#/gallery?${new URLSearchParams({ q: search.value, page: String(page - 1) })}` }, "Previous") : null,
      page * listing.page_size < listing.total ? h("a", { class: "button", href: `#/gallery?${new URLSearchParams({ q: search.value, page: String(page + 1) })}` }, "Next") : null,
    ),
    shown,
  );
}
