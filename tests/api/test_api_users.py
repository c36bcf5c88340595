"""The user-data routes: operators only, ids checked by field, a 202 with a status resource, one erasure per
user while it runs; an access export per request, its status found under its own user only. (The export's
content, ClickHouse's rows included, is proven in tests/processors/test_proc_erasure_stack.py.)"""

from __future__ import annotations

import httpx
import pytest

from models.erasure import DataExport, Erasure, ErasureStatus
from tests.api.conftest import NewOwner, auth
from tests.processors.factories import snowflake

pytestmark = pytest.mark.stack


async def test_only_operators_reach_a_users_data(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    owner = await new_owner()
    user = snowflake()
    for method, path in (
        ("DELETE", f"/users/{user}/data"),
        ("GET", f"/users/{user}/data/erasures/00000000-0000-0000-0000-000000000001"),
        ("POST", f"/users/{user}/data/exports"),
        ("GET", f"/users/{user}/data/exports/00000000-0000-0000-0000-000000000001"),
    ):
        forbidden = await client.request(method, path, headers=owner)
        assert forbidden.status_code == 403, (method, path, forbidden.text)
        assert "operators only" in forbidden.json()["detail"]
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401, (method, path)


async def test_a_bad_user_id_is_refused_naming_the_field(client: httpx.AsyncClient, admin_key: str) -> None:
    for method, path in (
        ("DELETE", "/users/not-an-id/data"),
        ("GET", "/users/x/data/erasures/00000000-0000-0000-0000-000000000001"),
        ("POST", "/users/123456789012345678901/data/exports"),
        ("GET", "/users/-1/data/exports/00000000-0000-0000-0000-000000000001"),
    ):
        response = await client.request(method, path, headers=auth(admin_key))
        assert response.status_code == 422
        assert [error["path"] for error in response.json()["errors"]] == ["user_id (path)"]


async def test_an_erasure_is_accepted_once_per_user_and_has_a_status(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    user, someone_else = snowflake(), snowflake()
    first = await client.delete(f"/users/{user}/data", headers=auth(admin_key))
    assert first.status_code == 202, first.text
    erasure = Erasure.model_validate(first.json())
    assert erasure.status is ErasureStatus.running and erasure.user_id == user
    assert first.headers["Location"] == f"/users/{user}/data/erasures/{erasure.erasure_id}"

    again = await client.delete(f"/users/{user}/data", headers=auth(admin_key))
    assert again.status_code == 202
    assert Erasure.model_validate(again.json()).erasure_id == erasure.erasure_id

    status = await client.get(first.headers["Location"], headers=auth(admin_key))
    assert status.status_code == 200
    assert Erasure.model_validate(status.json()).erasure_id == erasure.erasure_id
    # The status of one user's erasure is not found under another user's id.
    elsewhere = await client.get(
        f"/users/{someone_else}/data/erasures/{erasure.erasure_id}", headers=auth(admin_key)
    )
    assert elsewhere.status_code == 404


async def test_an_export_is_accepted_with_a_status_found_under_its_user_only(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    user, someone_else = snowflake(), snowflake()
    first = await client.post(f"/users/{user}/data/exports", headers=auth(admin_key))
    assert first.status_code == 202, first.text
    export = DataExport.model_validate(first.json())
    assert export.user_id == user and export.data is None
    assert first.headers["Location"] == f"/users/{user}/data/exports/{export.export_id}"
    status = await client.get(first.headers["Location"], headers=auth(admin_key))
    assert status.status_code == 200
    assert DataExport.model_validate(status.json()).export_id == export.export_id
    # Each request is an export of its own (what is held changes between them).
    second = await client.post(f"/users/{user}/data/exports", headers=auth(admin_key))
    assert DataExport.model_validate(second.json()).export_id != export.export_id
    elsewhere = await client.get(
        f"/users/{someone_else}/data/exports/{export.export_id}", headers=auth(admin_key)
    )
    assert elsewhere.status_code == 404
    bad_id = await client.get(f"/users/{user}/data/exports/not-a-uuid", headers=auth(admin_key))
    assert bad_id.status_code == 422
    assert [error["path"] for error in bad_id.json()["errors"]] == ["export_id (path)"]
