"""Index creation shared by every repository."""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection


async def ensure_indexes(
    collection: AsyncCollection[dict[str, Any]], models: list[IndexModel]
) -> None:
    """Create the indexes that do not exist yet, by name.

    One `create_index` per model rather than `create_indexes`: the embedded store's version drops
    options such as `partialFilterExpression`, and its re-creation of an existing unique partial
    index wrongly re-checks every document. On MongoDB skipping an existing index saves a no-op."""
    existing = await collection.index_information()
    for model in models:
        spec = dict(model.document)
        if spec["name"] in existing:
            continue
        keys = list(spec.pop("key").items())
        await collection.create_index(keys, **spec)
