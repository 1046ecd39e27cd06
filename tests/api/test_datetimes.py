"""Every `DateTime` the API sends has one form: RFC 3339 in UTC, milliseconds, `Z`."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import GraphQLClient, send_message, sign_up

FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def datetimes(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in datetimes(v, k)]
    if isinstance(value, list):
        return [t for v in value for t in datetimes(v, key)]
    return [value] if key.endswith(("At", "From", "To")) and isinstance(value, str) else []


async def test_one_datetime_form_everywhere(gql: GraphQLClient) -> None:
    registered = await gql.register()
    user = await sign_up(gql)
    sent = await send_message(user, "what time is it?")
    conversation = sent["conversation"]["id"]
    data = await user.ok(
        """query($id: ID!) { me { createdAt }
            conversation(id: $id) { createdAt updatedAt
                messages(first: 5) { edges { node { createdAt updatedAt } } } } }""",
        {"id": conversation},
    )
    exported = await user.ok(
        "query($id: ID!) { exportConversation(id: $id, format: JSON) }", {"id": conversation}
    )
    seen = (
        datetimes(registered)
        + datetimes(data)
        + datetimes(json.loads(exported["exportConversation"]))
    )
    assert len(seen) >= 8
    assert [t for t in seen if not FORM.match(t)] == []
