"""An LLM as judge: the paper's questions rendered from the templates, sent through a completer
(an OpenAI-compatible endpoint or a local HF model), answers parsed strictly, one retry.

Flow for a batch: every question is sent at once (the completer bounds concurrency); replies
without a parseable verdict get one follow-up in the same conversation asking for the verdict
line only; what is still unparseable is recorded invalid with its raw text. Pairwise items are
asked in both orders and combined with the both-orders rule (`orders.py`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from lima.judging import prompts
from lima.judging.orders import combine
from lima.judging.parsing import parse
from lima.judging.types import Item, Verdict, check_protocol

Message = dict[str, str]
T = TypeVar("T")


class CompletionFailedError(Exception):
    """A request failed after every retry; the message is safe to show (no secrets)."""


class Completer(Protocol):
    async def complete_many(self, conversations: list[list[Message]]) -> list[str | Exception]:
        """One reply (or the exception that ended its retries) per conversation, in order."""
        ...


@dataclass
class _Question:
    item: int
    order: str  # "ab", "ba" or "single"
    messages: list[Message]
    reply: str | None = None
    label: str | int | None = None
    error: str | None = None
    first_reply: str | None = None  # the unparseable reply a retry replaced
    attempts: int = 0


class LLMJudge:
    """A judge backed by a language model reached through a `Completer`."""

    proxy = False
    symmetric = False

    def __init__(
        self,
        name: str,
        completer: Completer,
        max_tokens: int = 1024,
        prompt_set: str = prompts.DEFAULT_SET,
    ) -> None:
        self.name = name
        self.completer = completer
        self.prompt_set = prompt_set
        self.fingerprint = (
            f"templates={prompts.fingerprint()};set={prompt_set};max_tokens={max_tokens}"
        )

    def judge(self, protocol: str, items: list[Item]) -> list[Verdict]:
        protocol = check_protocol(protocol)
        prompts.check_set(self.prompt_set, protocol)
        if not items:
            return []
        return run_sync(self._judge(protocol, items))

    async def _judge(self, protocol: str, items: list[Item]) -> list[Verdict]:
        questions = [q for i, item in enumerate(items) for q in self._questions(protocol, i, item)]
        await self._ask(protocol, questions)
        retry = [q for q in questions if q.error is None and q.label is None]
        for question in retry:
            question.first_reply = question.reply
            question.messages = [
                *question.messages,
                {"role": "assistant", "content": question.reply or ""},
                {"role": "user", "content": prompts.reminder(self.prompt_set, protocol)},
            ]
        await self._ask(protocol, retry)
        by_item: dict[int, list[_Question]] = {}
        for question in questions:
            by_item.setdefault(question.item, []).append(question)
        return [_verdict(protocol, items[i], by_item[i]) for i in range(len(items))]

    def _questions(self, protocol: str, index: int, item: Item) -> list[_Question]:
        def ask(order: str) -> _Question:
            return _Question(index, order, prompts.messages(self.prompt_set, protocol, item, order))

        if protocol != "pairwise":
            return [ask("single")]
        if item.other is None:
            raise ValueError(f"pairwise item {item.key!r} has no baseline answer (`other`)")
        return [ask("ab"), ask("ba")]

    async def _ask(self, protocol: str, questions: list[_Question]) -> None:
        if not questions:
            return
        replies = await self.completer.complete_many([q.messages for q in questions])
        for question, reply in zip(questions, replies, strict=True):
            question.attempts += 1
            if isinstance(reply, Exception):
                question.error = str(reply) or type(reply).__name__
                continue
            question.reply = reply
            question.label = parse(protocol, reply)


def _verdict(protocol: str, item: Item, questions: list[_Question]) -> Verdict:
    raw = [q.reply or "" for q in questions]
    detail: dict[str, Any] = {"attempts": {q.order: q.attempts for q in questions}}
    retried = {q.order: q.first_reply for q in questions if q.first_reply is not None}
    if retried:
        detail["retried_raw"] = retried
    errors = [f"{q.order}: {q.error}" for q in questions if q.error]
    if errors:
        detail["error"] = "; ".join(errors)
    if protocol == "pairwise":
        ab, ba = questions
        detail["ab"], detail["ba"] = ab.label, ba.label
        valid = ab.label is not None and ba.label is not None
        value = combine(str(ab.label), str(ba.label)) if valid else None
    else:
        value = questions[0].label
        valid = value is not None
    return Verdict(item.prompt_id, protocol, value, valid, raw, detail, item.turn)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is already
    running in this thread (then in a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="lima-judge-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
