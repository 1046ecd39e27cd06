"""The `sign_in_flows` collection: provider sign-ins under way, between the redirect to the
provider and its callback. Kept by the SHA-256 of their `state` and taken once; they expire
(TTL) after `FLOW_TTL`. In the database, not in the process: the callback may reach another
instance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.clock import utc_now
from gql_chat.store.indexes import ensure_indexes


@dataclass(frozen=True, slots=True)
class SignInFlow:
    provider: str
    browser_hash: str
    """SHA-256 of the random value in the browser's cookie: the callback must come from the
    browser that started the flow (a login CSRF otherwise signs a victim in as the attacker)."""
    nonce: str
    code_verifier: str
    redirect_uri: str
    client_challenge: str
    """The frontend's PKCE-style challenge: only the frontend that started the flow (holding
    its verifier) can redeem the code it ends with."""
    link_user_id: ObjectId | None
    """Set when a signed-in user is linking this provider to their account."""
    expires_at: datetime


class SignInFlowStore:
    INDEXES = [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl")]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._flows = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._flows, self.INDEXES)

    async def add(self, state_hash: str, flow: SignInFlow) -> None:
        await self._flows.insert_one(
            {
                "_id": state_hash,
                "provider": flow.provider,
                "browser_hash": flow.browser_hash,
                "nonce": flow.nonce,
                "code_verifier": flow.code_verifier,
                "redirect_uri": flow.redirect_uri,
                "client_challenge": flow.client_challenge,
                "link_user_id": flow.link_user_id,
                "expires_at": flow.expires_at,
            }
        )

    async def take(self, state_hash: str, browser_hash: str) -> SignInFlow | None:
        """The flow, once, for the browser that started it: deleted as it is read; None when
        unknown, taken, expired or another browser's (which leaves it for its own)."""
        doc = await self._flows.find_one_and_delete(
            {"_id": state_hash, "browser_hash": browser_hash, "expires_at": {"$gt": utc_now()}}
        )
        if doc is None:
            return None
        return SignInFlow(
            provider=doc["provider"],
            browser_hash=doc["browser_hash"],
            nonce=doc["nonce"],
            code_verifier=doc["code_verifier"],
            redirect_uri=doc["redirect_uri"],
            client_challenge=doc["client_challenge"],
            link_user_id=doc.get("link_user_id"),
            expires_at=doc["expires_at"],
        )
