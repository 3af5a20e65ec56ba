"""HTTP route listing the account's users: translation only."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from contacts_api.accounts import service
from contacts_api.accounts.schemas import UserList, UserListEnvelope
from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.openapi_docs import AUTH_RESPONSES
from contacts_api.http.state import app_db


@get("/users", responses=AUTH_RESPONSES, tags=["users"])
async def list_users(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> UserListEnvelope:
    """The users of the key's account."""
    db = app_db(request)
    async with db.read() as conn:
        users = await service.list_users(conn, principal)
    return UserListEnvelope(UserList(users))
