"""The guild economy: /daily, /balance, /give, /tip and /leaderboard coins over the guild's wallets.

Each member's wallet is a table value of its own, so a command writes one small record (a give two), however
many members the guild has. The wallets of a guild share its partition: the guild's commands are applied one
at a time in partition order, and two members giving to each other at once cannot both spend the same coins.
A balance never goes negative (a give or tip above the balance is refused). Every wallet remembers the events
applied to it, so a redelivered command changes nothing, and a give whose debit was recorded but not its
credit (a worker that stopped between the two records) is completed.

Guilds whose economy began before the per-member wallets hold their wallets as one value (`Wallets`): a
member without a wallet of their own has the balance and the last /daily it holds, and their first change
moves them to their own wallet.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from models.agent import EconomyConfig
from models.deployments import DeployedAgent
from models.processor_state import ECONOMY_APPLIED_MEMORY, LEADERBOARD_SIZE, Wallet, Wallets
from processors.commands import Invocation
from processors.emit import Say
from processors.outcome import Outcome

_EMPTY = Wallet()


@dataclass(frozen=True)
class GuildWallets:
    """The guild's wallets as its tables hold them: `own` reads a member's wallet, `holders` lists the
    members with one, and `before` is the guild's wallets in the layout before them, if it has any."""

    own: Callable[[str], Wallet | None]
    holders: Callable[[], Iterable[tuple[str, Wallet]]]
    before: Wallets | None

    def of(self, user_id: str) -> Wallet:
        held = self.own(user_id)
        if held is not None:
            return held
        if self.before is None or user_id not in self.before.balances:
            return _EMPTY
        return Wallet(balance=self.before.balances[user_id], last_daily=self.before.last_daily.get(user_id))

    def applied(self, wallet: Wallet, event_id: str) -> bool:
        """Whether the event was applied to the wallet, or to the guild's wallets before they were split."""
        return event_id in wallet.applied or (self.before is not None and event_id in self.before.applied)

    def balances(self) -> Iterator[tuple[str, int]]:
        moved = set()
        for user_id, wallet in self.holders():
            moved.add(user_id)
            yield user_id, wallet.balance
        if self.before is not None:
            yield from ((u, b) for u, b in self.before.balances.items() if u not in moved)


@dataclass(frozen=True)
class Tip:
    """A tip that went through: the agent thanks the tipper and warms to them."""

    agent: DeployedAgent
    amount: int
    thanks: Say


def _applied(wallet: Wallet, event_id: str) -> list[str]:
    return [*wallet.applied, event_id][-ECONOMY_APPLIED_MEMORY:]


def _credited(wallet: Wallet, amount: int, event_id: str) -> Wallet:
    return wallet.model_copy(
        update={"balance": wallet.balance + amount, "applied": _applied(wallet, event_id)}
    )


def _amount(invocation: Invocation) -> int | None:
    amount = invocation.number("amount")
    return amount if amount is not None and amount >= 1 else None


def leaderboard(balances: Iterable[tuple[str, int]], config: EconomyConfig) -> Say:
    ranked = heapq.nsmallest(LEADERBOARD_SIZE, balances, key=lambda item: (-item[1], item[0]))
    if not ranked:
        return Say(f"Nobody has any {config.currency} yet.", title="Leaderboard")
    lines = [f"{n}. <@{user}> — {balance} {config.currency}" for n, (user, balance) in enumerate(ranked, 1)]
    return Say("\n".join(lines), title="Leaderboard")


def _daily(
    wallets: GuildWallets, user_id: str, day: date, config: EconomyConfig, event_id: str
) -> Outcome[dict[str, Wallet]]:
    wallet = wallets.of(user_id)
    if wallets.applied(wallet, event_id):
        return Outcome(None)
    if wallet.last_daily == day:
        return Outcome(Say(f"You already claimed today's {config.currency}.", ephemeral=True))
    claimed = wallet.balance + config.daily_amount
    # The latest day claimed: a claim of yesterday's that arrives after today's leaves today's refused.
    last_daily = day if wallet.last_daily is None else max(day, wallet.last_daily)
    updated = Wallet(balance=claimed, last_daily=last_daily, applied=_applied(wallet, event_id))
    say = Say(f"<@{user_id}> claimed {config.daily_amount} {config.currency}: {claimed}.")
    return Outcome(say, state={user_id: updated})


def handle_economy(
    invocation: Invocation,
    wallets: GuildWallets,
    config: EconomyConfig,
    event_id: str,
    agents: dict[str, DeployedAgent],
) -> tuple[Outcome[dict[str, Wallet]], Tip | None]:
    """The answer and the wallets changed, by user id (None: none), and the tip when one went through.
    `agents`: the guild's deployments by bot user id, the only ones that can be tipped."""
    name, user_id, currency = invocation.name, invocation.user.id, config.currency
    if name == "leaderboard":
        return Outcome(leaderboard(wallets.balances(), config)), None
    if name == "balance":
        target = invocation.text("user") or user_id
        return Outcome(Say(f"<@{target}> has {wallets.of(target).balance} {currency}.")), None
    if name == "daily":
        return _daily(wallets, user_id, invocation.at.date(), config, event_id), None
    if name not in ("give", "tip"):
        raise ValueError(f"not an economy command: {name}")
    target = invocation.text("agent" if name == "tip" else "user")
    amount = _amount(invocation)
    giver = wallets.of(user_id)
    if wallets.applied(giver, event_id):
        # Given when the event came before; the receiver's record may not have been written then.
        receiver = wallets.of(target)
        if amount is None or wallets.applied(receiver, event_id):
            return Outcome(None), None
        return Outcome(None, state={target: _credited(receiver, amount, event_id)}), None
    if amount is None:
        return Outcome(Say("The amount must be at least 1.", ephemeral=True)), None
    if target == user_id:
        return Outcome(Say(f"You cannot {name} yourself.", ephemeral=True)), None
    tipped = agents.get(target) if name == "tip" else None
    if name == "tip" and tipped is None:
        return Outcome(Say(f"<@{target}> is not an agent here.", ephemeral=True)), None
    if amount > giver.balance:
        return Outcome(Say(f"You have only {giver.balance} {currency}.", ephemeral=True)), None
    updated = {
        user_id: giver.model_copy(
            update={"balance": giver.balance - amount, "applied": _applied(giver, event_id)}
        ),
        target: _credited(wallets.of(target), amount, event_id),
    }
    say = Say(f"<@{user_id}> gave <@{target}> {amount} {currency}.")
    if tipped is None:
        return Outcome(say, state=updated), None
    thanks = Say(f"Thank you for the {amount} {currency}, <@{user_id}>!")
    return Outcome(say, state=updated), Tip(agent=tipped, amount=amount, thanks=thanks)
