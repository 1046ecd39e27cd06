"""The `users` collection."""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gql_chat.domain.budgets import Budget, BudgetPeriod
from gql_chat.domain.clock import as_utc, utc_now
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.model_access import ModelPatterns
from gql_chat.domain.pages import Page
from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import BadUserInput, Conflict
from gql_chat.store.cursors import decode_cursor, encode_cursor
from gql_chat.store.indexes import ensure_indexes


def user_from_document(doc: dict[str, Any]) -> UserRecord:
    return UserRecord(
        id=doc["_id"],
        email=doc["email"],
        display_name=doc["display_name"],
        role=Role(doc.get("role", Role.USER)),
        disabled=bool(doc.get("disabled", False)),
        password_hash=doc.get("password_hash"),
        created_at=as_utc(doc["created_at"]),
        email_verified=bool(doc.get("email_verified", False)),
        tokens_valid_after=(
            as_utc(doc["tokens_valid_after"]) if doc.get("tokens_valid_after") else None
        ),
        budget=budget_from_document(doc.get("budget")),
        allowed_models=(
            ModelPatterns(tuple(doc["allowed_models"]))
            if doc.get("allowed_models") is not None
            else None
        ),
    )


def budget_to_document(budget: Budget | None) -> dict[str, Any] | None:
    return {"amount": budget.amount, "period": budget.period.value} if budget else None


def budget_from_document(doc: dict[str, Any] | None) -> Budget | None:
    return Budget(float(doc["amount"]), BudgetPeriod(doc["period"])) if doc else None


class UserStore:
    """Users keyed by ObjectId; the email is stored trimmed and lower-cased, unique."""

    INDEXES = [IndexModel([("email", ASCENDING)], unique=True, name="email_unique")]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._users = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._users, self.INDEXES)

    async def create(
        self,
        *,
        email: str,
        display_name: str,
        password_hash: str | None,
        role: Role = Role.USER,
        email_verified: bool = False,
    ) -> UserRecord:
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "email": email,
            "display_name": display_name,
            "password_hash": password_hash,
            "role": role.value,
            "disabled": False,
            "created_at": utc_now(),
            "email_verified": email_verified,
        }
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise Conflict("An account with this email already exists.", field="email") from exc
        return user_from_document(doc)

    async def get(self, user_id: ObjectId) -> UserRecord | None:
        doc = await self._users.find_one({"_id": user_id})
        return user_from_document(doc) if doc else None

    async def get_by_email(self, email: str) -> UserRecord | None:
        doc = await self._users.find_one({"email": email})
        return user_from_document(doc) if doc else None

    async def update(self, user_id: ObjectId, **fields: Any) -> UserRecord | None:
        """Set the given document fields; None when the user no longer exists. Raises
        `Conflict` for an email another account has."""
        if fields:
            try:
                result = await self._users.update_one({"_id": user_id}, {"$set": fields})
            except DuplicateKeyError as exc:
                raise Conflict("An account with this email already exists.", field="email") from exc
            if result.matched_count == 0:
                return None
        return await self.get(user_id)

    async def set_budget(self, user_id: ObjectId, budget: Budget | None) -> UserRecord | None:
        return await self.update(user_id, budget=budget_to_document(budget))

    async def set_allowed_models(
        self, user_id: ObjectId, allowed: ModelPatterns | None
    ) -> UserRecord | None:
        return await self.update(
            user_id, allowed_models=list(allowed.patterns) if allowed is not None else None
        )

    async def list_page(
        self, first: int, after: str | None, search: str | None
    ) -> Page[UserRecord]:
        """Oldest first; ObjectIds grow with creation time, so `_id` is the keyset."""
        query: dict[str, Any] = {}
        if search:
            query["email"] = {"$regex": re.escape(search.strip().lower()), "$options": "i"}
        page_query = dict(query)
        if after is not None:
            last_id = parse_object_id(str(decode_cursor(after, "after").get("i")))
            if last_id is None:
                raise BadUserInput("after", "Invalid cursor.")
            page_query["_id"] = {"$gt": last_id}
        cursor = self._users.find(page_query).sort("_id", ASCENDING).limit(first + 1)
        docs = [doc async for doc in cursor] if first > 0 else []
        return Page(
            items=[
                (encode_cursor({"i": str(doc["_id"])}), user_from_document(doc))
                for doc in docs[:first]
            ],
            has_next_page=len(docs) > first,
            has_previous_page=after is not None,
            total_count=await self._users.count_documents(query),
        )

    async def delete(self, user_id: ObjectId) -> None:
        await self._users.delete_one({"_id": user_id})
