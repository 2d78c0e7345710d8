"""Chat, agent-trajectory and reasoning templates: a record's messages -> token ids and a loss mask.

Every message is `<|im_start|>{role}\\n{body}<|im_end|>\\n` (ChatML, the IQuest-Coder template), where
<|im_start|> and <|im_end|> are single special ids and the body is content. Bodies by role:

- system, user: the content.
- assistant: with template "thinking" and a "reasoning" field, `<think>\\n{reasoning}\\n</think>\\n\\n`
  first (the explicit reasoning trace; template "instruct" drops it); then the content; then for each
  entry of "tool_calls" ({"name": ..., "arguments": {...}}) `\\n<tool_call>\\n{json}\\n</tool_call>`.
- tool (an observation: a tool's result): `<tool_response>\\n{content}\\n</tool_response>`.

An agent trajectory is such a conversation: assistant actions (tool calls), tool observations, and
assistant corrections after a failed observation. `assistant_mask[i]` is True for the tokens of assistant
bodies and their closing <|im_end|> (what the model must learn to produce, including when to stop).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

ROLES = ("system", "user", "assistant", "tool")
TEMPLATES = ("instruct", "thinking")


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def special_id(self, token: str) -> int: ...


def message_body(message: dict[str, Any], template: str) -> str:
    """The text between `<|im_start|>{role}\\n` and `<|im_end|>` (see the module doc)."""
    role, content = message["role"], message.get("content") or ""
    if role == "tool":
        return f"<tool_response>\n{content}\n</tool_response>"
    if role != "assistant":
        return content
    body = content
    if template == "thinking" and message.get("reasoning"):
        body = f"<think>\n{message['reasoning']}\n</think>\n\n{content}"
    for call in message.get("tool_calls") or []:
        payload = json.dumps({"name": call["name"], "arguments": call.get("arguments", {})}, ensure_ascii=False)
        body += f"\n<tool_call>\n{payload}\n</tool_call>"
    return body


def render_chat(messages: list[dict[str, Any]], tokenizer: Tokenizer, template: str = "instruct"
                ) -> tuple[list[int], list[bool]]:
    """Token ids of the conversation and, per token, whether it belongs to an assistant turn."""
    if template not in TEMPLATES:
        raise ValueError(f"template: expected one of {TEMPLATES}, got {template!r}")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: expected a non-empty list of {role, content} records")
    start, end = tokenizer.special_id("<|im_start|>"), tokenizer.special_id("<|im_end|>")
    ids: list[int] = []
    mask: list[bool] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"messages[{i}].role: expected one of {ROLES}, got "
                             f"{message.get('role') if isinstance(message, dict) else message!r}")
        header = [start, *tokenizer.encode(f"{message['role']}\n")]
        body = [*tokenizer.encode(message_body(message, template)), end]
        trailer = tokenizer.encode("\n")
        learn = message["role"] == "assistant"
        ids += header + body + trailer
        mask += [False] * len(header) + [learn] * len(body) + [False] * len(trailer)
    return ids, mask


def chat_text(messages: list[dict[str, Any]], template: str = "instruct") -> str:
    """The rendered conversation as text (special tokens written out)."""
    return "".join(f"<|im_start|>{m['role']}\n{message_body(m, template)}<|im_end|>\n" for m in messages)
