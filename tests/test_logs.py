"""Logs: structured, correlated, and free of passwords, tokens, keys and message text."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from gql_chat.config import Settings
from gql_chat.logs import JsonFormatter, RequestIdFilter, TextFormatter, configure_logging
from tests.conftest import LiveServer, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, follow_reply, send_message

PASSWORD = "hunter2-but-longer-and-secret"
SECRET_TEXT = "my confidential question about project bluebird"
REPLY_TEXT = ["The ", "answer ", "is ", "classified-xyz"]
LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken refreshToken } }"


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter)


async def test_a_full_scenario_logs_no_secrets(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    fake_openrouter: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.DEBUG)
    fake_openrouter.enqueue(Reply(tokens=REPLY_TEXT), Reply(status=429), Reply(tokens=["Title"]))

    registered = await live_gql.register(email="logs@example.com", password=PASSWORD)
    tokens = (await live_gql.execute(LOGIN, {"e": "logs@example.com", "p": PASSWORD})).ok()["login"]
    refreshed = await live_gql.execute(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        {"t": tokens["refreshToken"]},
    )
    user = SignedIn(
        live_gql,
        tokens["accessToken"],
        tokens["refreshToken"],
        registered["user"]["id"],
        "logs@example.com",
    )
    sent = await send_message(user, SECRET_TEXT)
    events = await follow_reply(live_server.ws_url, user.token, sent["assistantMessage"]["id"])
    assert events[-1]["message"]["content"] == "".join(REPLY_TEXT)
    failed_login = await live_gql.execute(LOGIN, {"e": "x@example.com", "p": "wrong-pw-secret"})
    assert failed_login.error_codes == ["UNAUTHENTICATED"]

    secrets = [
        PASSWORD,
        "wrong-pw-secret",
        registered["accessToken"],
        registered["refreshToken"],
        tokens["accessToken"],
        tokens["refreshToken"],
        refreshed.ok()["refreshToken"]["accessToken"],
        "sk-or-test-key-never-echoed",
        SECRET_TEXT,
        "bluebird",
        "classified-xyz",
    ]
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) > 10
    everything = "\n".join(lines)
    for secret in secrets:
        assert secret not in everything, f"leaked into logs: {secret[:12]}…"

    operations = [json.loads(line) for line in lines if '"operation_type"' in line]
    anonymous_ok = [e for e in operations if e["outcome"] == "ok" and e["user_id"] is None]
    assert anonymous_ok
    assert all(e["request_id"] != "-" and e["duration_ms"] >= 0 for e in operations)
    assert any(e["user_id"] == registered["user"]["id"] for e in operations)
    assert any("UNAUTHENTICATED" in e["error_codes"] for e in operations if e["outcome"] == "error")
    requests = [json.loads(line) for line in lines if '"status"' in line and '"path"' in line]
    assert requests
    assert all("?" not in entry["path"] for entry in requests)


def test_formats(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings_factory(log_format="json"))
    logging.getLogger("gql_chat.test").info("hello", extra={"user_id": "u1"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "hello"
    assert line["user_id"] == "u1"
    assert line["request_id"] == "-"
    configure_logging(settings_factory(log_format="text"))
    logging.getLogger("gql_chat.test").warning("plain", extra={"duration_ms": 3})
    text = capsys.readouterr().err.strip().splitlines()[-1]
    assert "WARNING gql_chat.test [-] plain duration_ms=3" in text
    record = logging.LogRecord("x", logging.ERROR, "", 0, "boom", (), None)
    record.request_id = "r"
    assert TextFormatter().format(record).endswith("[r] boom")


def test_driver_logs_keep_the_event_and_drop_the_documents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PyMongo's command log carries whole documents at DEBUG; ours keeps the event only."""
    from pymongo.logger import LogMessage

    from gql_chat.logs import protect_library_logs

    protect_library_logs()
    protect_library_logs()  # idempotent
    caplog.set_level(logging.DEBUG)
    driver = logging.getLogger("pymongo.command")
    driver.debug(
        LogMessage(
            message="Command started",
            commandName="insert",
            databaseName="gql_chat",
            command={"insert": "messages", "documents": [{"content": SECRET_TEXT}]},
            requestId=7,
        )
    )
    driver.debug(
        LogMessage(
            message="Command failed",
            commandName="insert",
            failure={"code": 11000, "errmsg": f"E11000 dup key: {{ email: '{SECRET_TEXT}' }}"},
            isServerSideError=True,
        )
    )
    driver.debug(object())  # a shape we do not know is dropped, not printed
    # Formatting must not raise: PyMongo redacts a server-side failure by reading its fields,
    # and a failed format makes `logging` print the record's raw arguments to stderr.
    logged = [str(record.msg) for record in caplog.records if record.name == "pymongo.command"]
    assert len(logged) == 2
    assert all(SECRET_TEXT not in line for line in logged)
    assert '"commandName": "insert"' in logged[0]
    assert '"requestId": 7' in logged[0]
    assert '"omitted\\": true' in logged[0]
    assert '"failure": "{}"' in logged[1]
