// Billing: the plans (Stripe prices), the current subscription, and a change of plan through Stripe Checkout.
// The tier changes when Stripe's webhook reaches the API, not when the browser comes back.
import { api, attempt, get, h, show } from "./api.js";

export async function billingPage(view, session) {
  const [plans, subscription] = await Promise.all([get("/billing/plans"), get("/billing/subscription")]);
  const current = session.me.owner.tier;
  const status = h("div", { id: "billing-status" });
  const choose = async (plan) => {
    const checkout = await attempt(status, () => api("POST", "/billing/checkout", { tier: plan.tier }));
    if (checkout) location.assign(checkout.checkout_url);
  };
  const returned = new URLSearchParams(location.hash.split("?")[1] || "").get("checkout");
  show(view,
    h("h2", {}, "Billing"),
    returned === "done" ? h("div", { class: "message ok", id: "checkout-done" }, "Thanks: your plan changes as soon as Stripe confirms the payment.") : null,
    returned === "cancelled" ? h("div", { class: "message error", id: "checkout-cancelled" }, "Checkout was cancelled: your plan is unchanged.") : null,
    h("p", { id: "current-tier" }, `Your plan: `, h("b", {}, current), subscription?.status ? ` (${subscription.status})` : ""),
    status,
    h(
      "div",
      { class: "grid", id: "plans" },
      plans.map((plan) =>
        h(
          "div",
          { class: "card", dataset: { tier: plan.tier } },
          h("span", { class: "name" }, plan.tier),
          h("span", {}, plan.price_usd_month == null ? "contact us" : `$${plan.price_usd_month} / month`),
          h("span", { class: "meta" }, `${plan.limits.agent_slots ?? "unlimited"} agents · ${plan.limits.monthly_ai_calls ?? "unlimited"} AI calls a month`),
          h("span", { class: "meta" }, `features: ${plan.limits.features.join(", ") || "none"}`),
          h(
            "div",
            { class: "actions" },
            plan.tier === current
              ? h("span", { class: "status ok" }, "current plan")
              : plan.purchasable
                ? h("button", { class: "primary choose", onclick: () => choose(plan) }, plan.limits.agent_slots > session.me.limits.agent_slots ? "Upgrade" : "Switch")
                : h("span", { class: "muted" }, plan.tier === "free" ? "when a subscription ends" : "contact us"),
          ),
        ),
      ),
    ),
  );
}
