"""An owner's consent to content in Parquet exports: off by default, theirs alone to change."""

from __future__ import annotations

import httpx
import pytest

from models.tiers import Tier
from tests.api.conftest import NewOwner

pytestmark = pytest.mark.stack


async def test_an_owner_enables_content_exports_for_themselves_only(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    owner, other = await new_owner(Tier.pro), await new_owner(Tier.pro)
    owner_id = (await client.get("/me", headers=owner)).json()["owner"]["owner_id"]
    assert (await client.get(f"/owners/{owner_id}", headers=owner)).json()["content_exports"] is False

    path = f"/owners/{owner_id}/content-exports"
    enabled = await client.put(path, json={"enabled": True}, headers=owner)
    assert enabled.status_code == 200 and enabled.json()["content_exports"] is True
    # Another owner neither changes it nor learns the owner exists.
    assert (await client.put(path, json={"enabled": False}, headers=other)).status_code == 404
    assert (await client.get(f"/owners/{owner_id}", headers=owner)).json()["content_exports"] is True

    refused = await client.put(path, json={"enabled": "sometimes"}, headers=owner)
    assert refused.status_code == 422 and "enabled" in refused.json()["detail"]
    disabled = await client.put(path, json={"enabled": False}, headers=owner)
    assert disabled.json()["content_exports"] is False
