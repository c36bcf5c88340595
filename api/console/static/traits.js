// The Big Five as sliders, with what each value changes in the agent's behaviour, live from
// GET /traits/preview (the processors' own behaviour functions).
import { get, h } from "./api.js";

const TRAITS = ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"];

export function traitSliders(values) {
  const sliders = Object.fromEntries(
    TRAITS.map((trait) => [trait, h("input", { type: "range", min: 0, max: 100, step: 1, id: `trait-${trait}`, name: trait, value: values[trait] ?? 50 })]),
  );
  const shown = Object.fromEntries(TRAITS.map((trait) => [trait, h("output", { id: `trait-${trait}-value` }, sliders[trait].value)]));
  const effects = h("tbody", { id: "trait-effects" });
  const matches = h("p", { class: "muted", id: "interest-matches" });
  const read = () => Object.fromEntries(TRAITS.map((trait) => [trait, Number(sliders[trait].value)]));
  let asked = 0;
  const refresh = async () => {
    const ask = ++asked;
    const preview = await get(`/traits/preview?${new URLSearchParams(read())}`);
    // Only the latest answer shows: a slow one must not overwrite a newer value.
    if (ask !== asked) return;
    effects.replaceChildren(
      ...preview.effects.map((effect) =>
        h(
          "tr",
          { class: effect.value !== effect.neutral ? "moved" : "", dataset: { trait: effect.trait, behaviour: effect.behaviour } },
          h("td", {}, effect.trait),
          h("td", {}, effect.behaviour),
          h("td", { class: `value${effect.value !== effect.neutral ? " changed" : ""}` }, effect.shown),
        ),
      ),
    );
    matches.textContent = `An interest in "${preview.example_interest}" also matches: ${preview.interest_matches.slice(1).join(", ") || "nothing else"}`;
  };
  for (const trait of TRAITS) {
    sliders[trait].addEventListener("input", () => {
      shown[trait].textContent = sliders[trait].value;
      refresh();
    });
  }
  refresh();
  const element = [
    h(
      "div",
      {},
      h("h3", {}, "Personality (Big Five)"),
      TRAITS.map((trait) => h("label", { class: "trait" }, trait, sliders[trait], shown[trait])),
    ),
    h(
      "div",
      {},
      h("h3", {}, "What it changes (neutral is 50)"),
      h("table", { class: "effects" }, h("thead", {}, h("tr", {}, h("th", {}, "trait"), h("th", {}, "behaviour"), h("th", {}, "value"))), effects),
      matches,
    ),
  ];
  return { element, read };
}
