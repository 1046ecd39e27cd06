"""Big ChatGPT-format exports, made up from a seed: the same seed gives the same export.

They hold what real ones do: an empty root, a hidden system message, edited prompts and
regenerated replies (branches), `current_node` on any leaf, images, tool calls with their
output, a reasoning model's thoughts and recap, and now and then a visible system message."""

from __future__ import annotations

import random
import uuid
from typing import Any

Node = dict[str, Any]

WORDS = [
    "the",
    "model",
    "answer",
    "question",
    "data",
    "tree",
    "branch",
    "import",
    "export",
    "chat",
    "message",
    "reply",
    "prompt",
    "python",
    "code",
    "image",
    "search",
    "result",
    "summary",
    "idea",
    "plan",
    "test",
    "value",
    "list",
    "error",
    "time",
    "über",
    "naïve",
    "日本語",
    "✓",
]
MODELS = ("gpt-4o", "gpt-4o-mini", "o3", "gpt-4.1")
START = 1_650_000_000.0


def chatgpt_export(conversations: int, seed: int) -> list[dict[str, Any]]:
    """`conversations` conversations of ChatGPT's `conversations.json`, decoded."""
    rng = random.Random(seed)
    return [_Conversation(rng, number).build() for number in range(conversations)]


class _Conversation:
    """One conversation being made: its nodes and the clock its messages are stamped by."""

    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.number = number
        self.mapping: dict[str, Node] = {}
        self.clock = START + number * 3600 + rng.random() * 60

    def build(self) -> dict[str, Any]:
        created = self.clock
        root = self._node(None, None)
        top = self._node(root, self._message("system", _text(""), hidden=True))
        if self.rng.random() < 0.1:
            top = self._node(top, self._message("system", _text("Answer briefly.")))
        for _ in range(self.rng.randint(1, 12)):
            top = self._turn(top)
            if self.rng.random() < 0.15:  # an edited prompt: a second branch from here
                self._turn(self.mapping[top]["parent"])
        leaves = [key for key, node in self.mapping.items() if not node["children"]]
        return {
            "title": self._words(1, 6).capitalize(),
            "create_time": created,
            "update_time": self.clock,
            "mapping": self.mapping,
            "moderation_results": [],
            "current_node": self.rng.choice(leaves),
            "conversation_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "default_model_slug": self.rng.choice(MODELS),
        }

    def _turn(self, parent: str) -> str:
        """A prompt and its reply (with tool calls or thoughts before it): the reply's key."""
        prompt = self._node(parent, self._message("user", self._prompt_content()))
        top = prompt
        model = self.rng.choice(MODELS)
        if self.rng.random() < 0.15:
            code = {"content_type": "code", "language": "python", "text": "print(6 * 7)"}
            top = self._node(top, self._message("assistant", code, model=model, to="python"))
            output = {"content_type": "execution_output", "text": "42"}
            top = self._node(top, self._message("tool", output, name="python"))
        if model == "o3":
            thoughts = [{"summary": self._words(2, 4), "content": self._words(5, 30)}]
            top = self._node(
                top,
                self._message(
                    "assistant", {"content_type": "thoughts", "thoughts": thoughts}, model=model
                ),
            )
            recap = {"content_type": "reasoning_recap", "content": "Thought for 4 seconds"}
            top = self._node(top, self._message("assistant", recap, model=model))
        reply = self._node(top, self._message("assistant", _text(self._words(3, 80)), model=model))
        if self.rng.random() < 0.1:  # a regenerated reply
            self._node(top, self._message("assistant", _text(self._words(3, 80)), model=model))
        return reply

    def _prompt_content(self) -> dict[str, Any]:
        if self.rng.random() < 0.1:
            image = {
                "content_type": "image_asset_pointer",
                "asset_pointer": f"file-service://file-{self.rng.getrandbits(64):016x}",
                "size_bytes": self.rng.randint(1_000, 2_000_000),
                "width": 1024,
                "height": 768,
            }
            return {"content_type": "multimodal_text", "parts": [image, self._words(2, 20)]}
        return _text(self._words(1, 40))

    def _message(
        self,
        role: str,
        content: dict[str, Any],
        *,
        hidden: bool = False,
        model: str | None = None,
        name: str | None = None,
        to: str = "all",
    ) -> dict[str, Any]:
        self.clock += self.rng.uniform(0.5, 30.0)
        metadata: dict[str, Any] = {"request_id": f"{self.rng.getrandbits(32):08x}"}
        if hidden:
            metadata["is_visually_hidden_from_conversation"] = True
        if model is not None:
            metadata["model_slug"] = model
        return {
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": None if hidden else self.clock,
            "update_time": None,
            "content": content,
            "status": "finished_successfully",
            "end_turn": role == "assistant" or None,
            "weight": 1.0,
            "metadata": metadata,
            "recipient": to,
        }

    def _node(self, parent: str | None, message: dict[str, Any] | None) -> str:
        key = str(uuid.UUID(int=self.rng.getrandbits(128)))
        if message is not None:
            message["id"] = key
        self.mapping[key] = {"id": key, "message": message, "parent": parent, "children": []}
        if parent is not None:
            self.mapping[parent]["children"].append(key)
        return key

    def _words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))


def _text(text: str) -> dict[str, Any]:
    return {"content_type": "text", "parts": [text]}
