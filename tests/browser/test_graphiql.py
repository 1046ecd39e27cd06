"""The GraphiQL explorer in a real browser (Debian's Chromium driven by Playwright): sign in,
run `me`, send a message and watch the reply stream in the result pane until it is done.

The page's assets come from a local npm install (`npm ci --prefix tests/browser`) through
`GQL_CHAT_GRAPHIQL_ASSETS_URL`, since our machines cannot reach a CDN. A screenshot is stored in
`artifacts/graphiql-stream.png`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gql_chat.config import Settings
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parent / "node_modules"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.browser

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".graphiql-response .CodeMirror"


def browser_available() -> bool:
    return Path(CHROMIUM).exists() and (ASSETS / "graphiql" / "graphiql.min.js").exists()


@pytest.fixture
async def assets_server() -> AsyncIterator[LiveServer]:
    """Serves the npm-installed packages node_modules-style, with CORS for SRI checks. Runs
    before the test body, so the skip (or CI's failure) for missing assets happens here."""
    if not browser_available():
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and `npm ci --prefix tests/browser`")
        pytest.skip("needs Debian's chromium and `npm ci --prefix tests/browser`")
    app = Starlette(
        routes=[Mount("/", StaticFiles(directory=ASSETS))],
        middleware=[Middleware(CORSMiddleware, allow_origins=["*"])],
    )
    server = LiveServer(app)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], assets_server: LiveServer) -> Settings:
    # The reply lasts seconds: on a loaded machine, typing the subscription in took longer
    # than a 0.3 s reply, which then replayed already finished (never seen STREAMING).
    return settings_factory(graphiql_assets_url=assets_server.http_url, offline_token_delay=0.2)


async def test_sign_in_and_follow_a_reply_in_the_explorer(live_server: LiveServer) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            violations: list[str] = []
            page.on(
                "console",
                lambda m: (
                    violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            await page.goto(f"{live_server.http_url}/graphql")
            await page.wait_for_selector(QUERY_EDITOR, timeout=20_000)

            headers = await editor_text(page, HEADERS_EDITOR)
            assert '"Authorization": "Bearer "' in headers  # the template

            registered = await run(
                page,
                'mutation Register { register(input: {email: "explorer@example.com", '
                'password: "a long password"}) { accessToken user { email } } }',
            )
            token = registered["data"]["register"]["accessToken"]
            await set_editor(page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))

            me = await run(page, "query Me { me { email } }")
            assert me == {"data": {"me": {"email": "explorer@example.com"}}}

            sent = await run(
                page,
                'mutation Send { sendMessage(input: {content: "hello from the explorer"}) '
                "{ assistantMessage { id } } }",
            )
            message_id = sent["data"]["sendMessage"]["assistantMessage"]["id"]
            await set_editor(
                page,
                QUERY_EDITOR,
                f'subscription Follow {{ messageStream(messageId: "{message_id}") '
                "{ seq delta done status message { content } } }",
            )
            await page.click(".graphiql-execute-button")
            seen_streaming = False
            final: dict[str, Any] = {}
            for _ in range(300):
                text = await editor_text(page, RESULT)
                if '"status": "STREAMING"' in text:
                    seen_streaming = True
                if '"done": true' in text:
                    final = json.loads(text)
                    break
                await asyncio.sleep(0.05)
            assert seen_streaming, f"the result pane never showed the reply streaming: {text[:500]}"
            event = final["data"]["messageStream"]
            assert event["status"] == "COMPLETE"
            assert "hello from the explorer" in event["message"]["content"]

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "graphiql-stream.png"), full_page=True)
            assert violations == []
        finally:
            await browser.close()


async def editor_text(page: Any, selector: str) -> str:
    text: str = await page.evaluate(
        "(s) => document.querySelector(s).CodeMirror.getValue()", selector
    )
    return text


async def set_editor(page: Any, selector: str, text: str) -> None:
    """Replace an editor's text; GraphiQL picks edits up after a short debounce."""
    await page.evaluate(
        "([s, t]) => document.querySelector(s).CodeMirror.setValue(t)", [selector, text]
    )
    await asyncio.sleep(0.6)


async def run(page: Any, query: str) -> dict[str, Any]:
    """Put one operation in the editor, press ▶, and wait for a fresh result."""
    previous = await editor_text(page, RESULT)
    await set_editor(page, QUERY_EDITOR, query)
    await page.click(".graphiql-execute-button")
    for _ in range(200):
        text = await editor_text(page, RESULT)
        if text.strip() and text != previous:
            result: dict[str, Any] = json.loads(text)
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"no result for {query}")


async def test_without_its_assets_the_explorer_says_what_to_do(
    settings_factory: Callable[..., Settings], assets_server: LiveServer
) -> None:
    """No internet: the assets URL answers nothing. The page says so, instead of loading for
    ever."""
    from playwright.async_api import async_playwright

    from tests.conftest import live_server_of

    unreachable = settings_factory(graphiql_assets_url="http://127.0.0.1:9")
    async with live_server_of(unreachable) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{server.http_url}/graphql")
            await page.wait_for_function(
                "document.getElementById('graphiql').textContent.includes('could not load')",
                timeout=20_000,
            )
            text = await page.text_content("#graphiql")
            assert text is not None
            assert "GQL_CHAT_GRAPHIQL_ASSETS_URL" in text
            assert "http://127.0.0.1:9" in text
        finally:
            await browser.close()
