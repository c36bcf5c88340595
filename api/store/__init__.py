"""The control plane's state in PostgreSQL, one store per resource: every write is one transaction that
also stages its announcements in the outbox. Policy (tier checks, token reassignment) is in pure modules
(api.policy, api.reassignment); the stores load its inputs and apply its answers.

Lock order, so concurrent writers serialise instead of racing or deadlocking: the owner row, then agent
rows (sorted), then routing keys (sorted, in stage_routing). Whoever changes what a routing record
contains holds the rows it read, so a record is never built from a configuration another transaction is
about to replace without that transaction building the record again after it.
"""

from __future__ import annotations

import asyncpg

from api.store.agents import Agents
from api.store.billing import Billing
from api.store.deployments import Deployments
from api.store.gallery import Gallery
from api.store.keys import ApiKeys, Principal
from api.store.notifications import Notifications
from api.store.outbox import Outbox
from api.store.owners import Owners, create_owner
from api.store.presets import PresetDeployments
from api.store.sessions import ConsoleSessions
from api.store.shared import Conflict, NotFound
from api.store.tokens import Tokens
from api.store.usage import UsageCounters, current_period
from vault.store import TokenVault

__all__ = ["Conflict", "NotFound", "Principal", "Store", "create_owner", "current_period"]


class Store:
    """The API process's stores, over one pool and topic namespace."""

    def __init__(self, pool: asyncpg.Pool, vault: TokenVault, namespace: str) -> None:
        self.namespace = namespace
        self.owners = Owners(pool, namespace)
        self.keys = ApiKeys(pool)
        self.agents = Agents(pool, namespace)
        self.deployments = Deployments(pool, namespace)
        self.presets = PresetDeployments(pool, namespace)
        self.tokens = Tokens(pool, vault, namespace)
        self.usage = UsageCounters(pool)
        self.notifications = Notifications(pool)
        self.outbox = Outbox(pool)
        self.sessions = ConsoleSessions(pool)
        self.gallery = Gallery(pool)
        self.billing = Billing(pool, namespace)
