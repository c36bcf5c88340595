// Billing: the plans (Stripe prices), the current subscription, an upgrade through Stripe Checkout and a
// downgrade of the subscription (cancelled for free). The tier changes when Stripe's webhook reaches the API,
// not when the browser comes back.
import { api, attempt, get, h, show } from "./api.js";

export async function billingPage(view, session) {
  const [plans, subscription] = await Promise.all([get("/billing/plans"), get("/billing/subscription")]);
  const current = session.me.owner.tier;
  const status = h("div", { id: "billing-status" });
  const choose = async (plan) => {
    const checkout = await attempt(status, () => api("POST", "/billing/checkout", { tier: plan.tier }));
    if (checkout) location.assign(checkout.checkout_url);
  };
  const downgrade = async (plan) => {
    const done = plan.tier === "free" ? "Your subscription is being cancelled" : `Your subscription is moving to ${plan.tier}`;
    await attempt(status, () => api("POST", "/billing/downgrade", { tier: plan.tier }), `${done}: your plan changes as soon as Stripe confirms.`);
  };
  // The plans come in tier order: those before the current one are downgrades.
  const rank = Object.fromEntries(plans.map((plan, index) => [plan.tier, index]));
  const action = (plan) => {
    if (plan.tier === current) return h("span", { class: "status ok" }, "current plan");
    if (rank[plan.tier] < rank[current] && subscription.subscription_id && subscription.status !== "canceled")
      return h("button", { class: "downgrade", onclick: () => downgrade(plan) }, plan.tier === "free" ? "Cancel subscription" : "Downgrade");
    if (plan.purchasable && rank[plan.tier] > rank[current]) return h("button", { class: "primary choose", onclick: () => choose(plan) }, "Upgrade");
    return h("span", { class: "muted" }, plan.tier === "enterprise" ? "contact us" : "");
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
          h("div", { class: "actions" }, action(plan)),
        ),
      ),
    ),
  );
}
