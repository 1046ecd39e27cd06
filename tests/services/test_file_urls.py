"""Signed file URLs: a URL verifies for exactly the attachment, user and expiry it was signed
for, until it expires, and only under the key it was signed with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gql_chat.services.file_urls import BadSignature, FileUrls

NOW = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
URLS = FileUrls("k" * 40, timedelta(hours=1))


def parts(url: str) -> tuple[str, str, str, str]:
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    return split.path.rsplit("/", 1)[1], query["user"], query["expires"], query["signature"]


def test_a_url_verifies_until_it_expires() -> None:
    attachment, user = ObjectId(), ObjectId()
    url = URLS.sign("https://chat.example/", attachment, user, NOW)
    assert url.startswith(f"https://chat.example/files/{attachment}?")
    signed = URLS.verify(*parts(url), NOW + timedelta(minutes=59))
    assert (signed.attachment_id, signed.owner_id) == (attachment, user)
    expires = int(parts(url)[2])
    assert expires % 60 == 0  # rounded up to the minute: one page gets the same URLs
    with pytest.raises(BadSignature):
        URLS.verify(*parts(url), datetime.fromtimestamp(expires, UTC))
    with pytest.raises(BadSignature):
        FileUrls("other" * 10, timedelta(hours=1)).verify(*parts(url), NOW)


@hypothesis_settings(derandomize=True, deadline=None, max_examples=80)
@given(position=st.integers(0, 3), replacement=st.text(min_size=1, max_size=30))
def test_changing_any_part_breaks_the_signature(position: int, replacement: str) -> None:
    url = URLS.sign("http://x", ObjectId(), ObjectId(), NOW)
    original = list(parts(url))
    if original[position] == replacement:
        return
    changed = [*original]
    changed[position] = replacement
    with pytest.raises(BadSignature):
        URLS.verify(changed[0], changed[1], changed[2], changed[3], NOW)
