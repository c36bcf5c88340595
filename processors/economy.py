"""The guild economy: /daily, /balance, /give, /tip and /leaderboard coins over one guild's wallets.

The wallets are one table value per guild, so the guild's commands are applied one at a time in partition
order: two members giving to each other at once cannot both spend the same coins. A balance never goes
negative (a give or tip above the balance is refused), and the wallets remember the events they applied, so a
redelivered command changes nothing. Being one value, the wallets hold as many members as a table value's
size allows (models/processor_state.py: TABLE_VALUE_MAX_BYTES): about 13,000 members who all claimed
/daily today or yesterday, 30,000 who did not; past that a command that would grow them is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from models.agent import EconomyConfig
from models.deployments import DeployedAgent
from models.processor_state import ECONOMY_APPLIED_MEMORY, LEADERBOARD_SIZE, Wallets, fits_in_table
from processors.commands import Invocation
from processors.emit import Say
from processors.outcome import Outcome

FULL = "This server's wallets are full: they cannot record more {currency}."


@dataclass(frozen=True)
class Tip:
    """A tip that went through: the agent thanks the tipper and warms to them."""

    agent: DeployedAgent
    amount: int
    thanks: Say


def _applied(wallets: Wallets, event_id: str) -> list[str]:
    return [*wallets.applied, event_id][-ECONOMY_APPLIED_MEMORY:]


def _amount(invocation: Invocation) -> int | None:
    amount = invocation.number("amount")
    return amount if amount is not None and amount >= 1 else None


def leaderboard(wallets: Wallets, config: EconomyConfig) -> Say:
    ranked = sorted(wallets.balances.items(), key=lambda item: (-item[1], item[0]))[:LEADERBOARD_SIZE]
    if not ranked:
        return Say(f"Nobody has any {config.currency} yet.", title="Leaderboard")
    lines = [f"{n}. <@{user}> — {balance} {config.currency}" for n, (user, balance) in enumerate(ranked, 1)]
    return Say("\n".join(lines), title="Leaderboard")


def handle_economy(
    invocation: Invocation,
    wallets: Wallets | None,
    config: EconomyConfig,
    event_id: str,
    agents: dict[str, DeployedAgent],
) -> tuple[Outcome[Wallets], Tip | None]:
    """The answer and the new wallets (None: unchanged), and the tip when one went through. `agents`: the
    guild's deployments by bot user id, the only ones that can be tipped."""
    current = wallets or Wallets()
    name, user_id, currency = invocation.name, invocation.user.id, config.currency
    if name == "leaderboard":
        return Outcome(leaderboard(current, config)), None
    if name == "balance":
        target = invocation.text("user") or user_id
        return Outcome(Say(f"<@{target}> has {current.balances.get(target, 0)} {currency}.")), None
    if event_id in current.applied:
        return Outcome(None), None
    balance = current.balances.get(user_id, 0)
    if name == "daily":
        day = invocation.at.date()
        if current.last_daily.get(user_id) == day:
            return Outcome(Say(f"You already claimed today's {currency}.", ephemeral=True)), None
        # Only today's claims refuse a claim, and yesterday's, for a claim made before midnight that arrives
        # after one made since: the older days would only grow the value.
        recent = {member: at for member, at in current.last_daily.items() if at >= day - timedelta(days=1)}
        updated = current.model_copy(
            update={
                "balances": {**current.balances, user_id: balance + config.daily_amount},
                "last_daily": {**recent, user_id: day},
                "applied": _applied(current, event_id),
            }
        )
        if not fits_in_table(updated):
            return Outcome(Say(FULL.format(currency=currency), ephemeral=True)), None
        say = Say(f"<@{user_id}> claimed {config.daily_amount} {currency}: {balance + config.daily_amount}.")
        return Outcome(say, state=updated), None
    if name not in ("give", "tip"):
        raise ValueError(f"not an economy command: {name}")
    target = invocation.text("agent" if name == "tip" else "user")
    amount = _amount(invocation)
    if amount is None:
        return Outcome(Say("The amount must be at least 1.", ephemeral=True)), None
    if target == user_id:
        return Outcome(Say(f"You cannot {name} yourself.", ephemeral=True)), None
    tipped = agents.get(target) if name == "tip" else None
    if name == "tip" and tipped is None:
        return Outcome(Say(f"<@{target}> is not an agent here.", ephemeral=True)), None
    if amount > balance:
        return Outcome(Say(f"You have only {balance} {currency}.", ephemeral=True)), None
    balances = {**current.balances, user_id: balance - amount}
    balances[target] = balances.get(target, 0) + amount
    updated = current.model_copy(update={"balances": balances, "applied": _applied(current, event_id)})
    if not fits_in_table(updated):
        return Outcome(Say(FULL.format(currency=currency), ephemeral=True)), None
    say = Say(f"<@{user_id}> gave <@{target}> {amount} {currency}.")
    if tipped is None:
        return Outcome(say, state=updated), None
    thanks = Say(f"Thank you for the {amount} {currency}, <@{user_id}>!")
    return Outcome(say, state=updated), Tip(agent=tipped, amount=amount, thanks=thanks)
