"""The OpenAI-compatible judge against a real HTTP endpoint on 127.0.0.1 (aiohttp server with
scripted verdicts, injected latency, 429/500/503, garbage): both orders, retries, Retry-After,
the concurrency bound, caching, invalid verdicts and secret hygiene."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from scripted_endpoint import Reply, ScriptedEndpoint, first_user_message

from lima.errors import LimaError
from lima.judging import Item, make_judge, position_consistency, win_tie_loss
from lima.judging.cache import JudgeError
from lima.settings import Settings
from lima.spec.evaluate import JudgeSpec
from lima.store import open_store

KEY = "sk-test-SECRET-0123456789abcdef"


def judge_settings(tmp_path: Path, url: str | None, key: str | None = KEY) -> Settings:
    return Settings(
        work_dir=tmp_path / "work",
        judge_base_url=url,
        judge_api_key=key,
        judge_model="judge-x",
        _env_file=None,
    )


def openai_spec(**overrides) -> JudgeSpec:
    values = {"backend": "openai", "max_retries": 3, "backoff_s": 0.01, "timeout_s": 5.0}
    values.update(overrides)
    return JudgeSpec(**values)


def shown_first(body: dict) -> str:
    """The text the judge saw as Response A."""
    text = first_user_message(body)
    return text.split("Answer A:\n", 1)[1].split("\nAnswer B:", 1)[0]


def item_id(text: str) -> str:
    return re.search(r"ID-(\w+)", text).group(1)


def pair(pid: str) -> Item:
    return Item(pid, f"question ID-{pid}", f"tested ID-{pid}", other=f"baseline ID-{pid}")


def single(pid: str) -> Item:
    return Item(pid, f"question ID-{pid}", f"tested ID-{pid}")


def test_pairwise_asks_both_orders_and_applies_the_both_orders_rule(tmp_path: Path) -> None:
    # (label when the tested answer is shown first, label when it is shown second)
    script = {
        "w": ("A", "B"),  # prefers the tested answer in both orders -> win
        "p": ("A", "A"),  # always prefers position A -> orders disagree -> tie
        "l": ("B", "A"),  # prefers the baseline in both orders -> loss
        "n": ("neither", "B"),  # neither, then tested -> disagree -> tie
    }

    def responder(body: dict) -> Reply:
        first = shown_first(body)
        ab, ba = script[item_id(first)]
        label = ab if first.startswith("tested") else ba
        return Reply(f"Some reasoning about A and B.\n\n**Verdict:** {label}")

    with ScriptedEndpoint(responder) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        verdicts = judge.judge("pairwise", [pair(p) for p in script])
        orders = Counter(shown_first(b).split()[0] for b in endpoint.bodies)
    assert orders == {"tested": 4, "baseline": 4}  # every item asked in both orders
    assert [v.value for v in verdicts] == ["win", "tie", "loss", "tie"]
    assert verdicts[1].detail["ab"] == "A" and verdicts[1].detail["ba"] == "A"
    assert len(verdicts[0].raw) == 2
    assert judge.name == "openai:judge-x" and judge.proxy is False
    summary = win_tie_loss(verdicts, resamples=200)
    assert (summary["win"], summary["tie"], summary["loss"]) == (0.25, 0.5, 0.25)
    assert position_consistency(verdicts) == 0.5


def test_requests_are_chat_completions_at_temperature_zero(tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda body: Reply("Rating: Pass")) as endpoint:
        judge = make_judge(openai_spec(max_tokens=77), judge_settings(tmp_path, endpoint.url))
        [verdict] = judge.judge("absolute", [single("a")])
    body = endpoint.bodies[0]
    assert verdict.value == "pass"
    assert body["model"] == "judge-x" and body["temperature"] == 0 and body["max_tokens"] == 77
    assert (
        "Fail" in body["messages"][0]["content"] and "tested ID-a" in body["messages"][0]["content"]
    )
    assert endpoint.authorizations == [f"Bearer {KEY}"]


def test_429_with_retry_after_and_500s_are_retried(tmp_path: Path) -> None:
    calls: dict[str, list[float]] = defaultdict(list)

    def responder(body: dict) -> Reply:
        pid = item_id(first_user_message(body))
        calls[pid].append(time.monotonic())
        n = len(calls[pid])
        if pid == "rate" and n == 1:
            return Reply(status=429, headers={"Retry-After": "0.4"}, body='{"error": "slow down"}')
        if pid == "boom" and n <= 2:
            return Reply(status=500, body="internal error")
        if pid == "junk" and n == 1:
            return Reply(body="<html>not json</html>")
        return Reply("Score: 5")

    with ScriptedEndpoint(responder) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        verdicts = judge.judge(
            "likert", [single("rate"), single("boom"), single("junk"), single("ok")]
        )
    assert [v.value for v in verdicts] == [5, 5, 5, 5]
    assert {pid: len(times) for pid, times in calls.items()} == {
        "rate": 2,
        "boom": 3,
        "junk": 2,
        "ok": 1,
    }
    assert calls["rate"][1] - calls["rate"][0] >= 0.38  # Retry-After honoured
    assert judge.inner.completer.stats["retries"] == 4


def test_exhausted_retries_raise_after_caching_the_rest_and_a_rerun_resumes(
    tmp_path: Path,
) -> None:
    healthy = {"value": False}

    def responder(body: dict) -> Reply:
        if item_id(first_user_message(body)) == "down" and not healthy["value"]:
            return Reply(status=503, body="unavailable")
        return Reply("Verdict: safe")

    items = [single("down"), single("up1"), single("up2")]
    with ScriptedEndpoint(responder) as endpoint:
        settings = judge_settings(tmp_path, endpoint.url)
        store = open_store(settings)
        judge = make_judge(openai_spec(max_retries=2), settings, store)
        with pytest.raises(JudgeError, match=r"1 of 3 safety verdicts failed.*HTTP 503") as info:
            judge.judge("safety", items)
        assert KEY not in str(info.value)
        assert endpoint.requests == 3 + 1 + 1  # 1 try + 2 retries, and one each for the others
        healthy["value"] = True
        endpoint.reset_counts()
        verdicts = make_judge(openai_spec(), settings, store).judge("safety", items)
        assert endpoint.requests == 1  # only the failed item is asked again
    assert [v.value for v in verdicts] == ["safe", "safe", "safe"]


def test_timeouts_are_retried_then_reported(tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda body: Reply("Rating: Pass", delay=1.0)) as endpoint:
        spec = openai_spec(timeout_s=0.2, max_retries=1)
        judge = make_judge(spec, judge_settings(tmp_path, endpoint.url))
        with pytest.raises(JudgeError, match=r"timeout after 0\.2s"):
            judge.judge("absolute", [single("slow")])
        assert endpoint.requests == 2


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda body: Reply("Rating: Excellent"), latency=0.1) as endpoint:
        judge = make_judge(openai_spec(concurrency=4), judge_settings(tmp_path, endpoint.url))
        started = time.monotonic()
        verdicts = judge.judge("absolute", [single(f"c{i}") for i in range(24)])
        elapsed = time.monotonic() - started
    assert all(v.value == "excellent" for v in verdicts)
    assert endpoint.max_in_flight == 4
    assert elapsed >= 24 / 4 * 0.1 * 0.95


def test_verdicts_are_cached_so_a_rerun_sends_nothing(tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda body: Reply("Verdict: B")) as endpoint:
        settings = judge_settings(tmp_path, endpoint.url)
        store = open_store(settings)
        items = [pair("x"), pair("y")]
        first = make_judge(openai_spec(), settings, store).judge("pairwise", items)
        assert endpoint.requests == 4
        endpoint.reset_counts()
        again = make_judge(openai_spec(), settings, store)
        second = again.judge("pairwise", items)
        assert endpoint.requests == 0 and again.hits == 2
        changed = [pair("x"), Item("y", "question ID-y", "a new answer ID-y", other="baseline")]
        make_judge(openai_spec(), settings, store).judge("pairwise", changed)
        assert endpoint.requests == 2  # only the changed item is asked again
    assert [v.value for v in second] == [v.value for v in first] == ["tie", "tie"]
    assert "cached" not in second[0].detail and second[0].raw == first[0].raw  # no run facts


def test_unparseable_replies_are_retried_once_then_invalid(tmp_path: Path) -> None:
    def responder(body: dict) -> Reply:
        pid = item_id(first_user_message(body))
        if pid == "fixed" and len(body["messages"]) == 3:
            return Reply("Rating: fail")
        return Reply("Hmm, this response is reasonable overall, I suppose.")

    with ScriptedEndpoint(responder) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        fixed, hopeless = judge.judge("absolute", [single("fixed"), single("hopeless")])
        follow_up = [b for b in endpoint.bodies if len(b["messages"]) == 3]
    assert endpoint.requests == 4
    assert fixed.valid and fixed.value == "fail" and fixed.detail["attempts"] == {"single": 2}
    assert not hopeless.valid and hopeless.value is None
    assert hopeless.raw == ["Hmm, this response is reasonable overall, I suppose."]
    assert follow_up[0]["messages"][1]["role"] == "assistant"
    assert "Fail, Pass or Excellent" in follow_up[0]["messages"][2]["content"]


def test_an_invalid_order_makes_the_pairwise_verdict_invalid_and_counted(tmp_path: Path) -> None:
    def responder(body: dict) -> Reply:
        first = shown_first(body)
        if item_id(first) == "bad" and first.startswith("baseline"):
            return Reply("Verdict: A or B, hard to say")
        return Reply("[[A]]")

    with ScriptedEndpoint(responder) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        verdicts = judge.judge("pairwise", [pair("bad"), pair("good")])
    assert [v.valid for v in verdicts] == [False, True]
    assert verdicts[0].detail["ab"] == "A" and verdicts[0].detail["ba"] is None
    summary = win_tie_loss(verdicts, resamples=100)
    assert summary["n"] == 1 and summary["invalid"] == 1


def test_the_api_key_never_reaches_logs_errors_or_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responder = lambda body: Reply(status=401, body=f'{{"error": "bad key {KEY}"}}')  # noqa: E731
    with ScriptedEndpoint(responder) as endpoint:
        settings = judge_settings(tmp_path, endpoint.url)
        judge = make_judge(openai_spec(), settings, open_store(settings))
        with pytest.raises(JudgeError) as info:
            judge.judge("likert", [single("k")])
        assert endpoint.requests == 1  # a 401 is not retried
    assert endpoint.authorizations == [f"Bearer {KEY}"]
    assert "HTTP 401" in str(info.value) and "**********" in str(info.value)
    for text in (str(info.value), repr(info.value), caplog.text, repr(judge.inner.completer)):
        assert KEY not in text
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="ignore")


def test_missing_endpoint_settings_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(LimaError, match="LIMA_JUDGE_BASE_URL"):
        make_judge(openai_spec(), judge_settings(tmp_path, None))


async def test_judging_works_from_inside_a_running_event_loop(tmp_path: Path) -> None:
    with ScriptedEndpoint(lambda body: Reply("Verdict: unsafe")) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        [verdict] = judge.judge("safety", [single("loop")])
    assert verdict.value == "unsafe"


def test_retry_after_and_backoff_arithmetic() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from lima.judging.openai_client import MAX_BACKOFF_S, MAX_RETRY_AFTER_S, _retry_after
    from lima.retry import Backoff

    assert _retry_after({"retry-after": "2.5"}) == 2.5
    assert _retry_after({}) is None and _retry_after({"retry-after": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after({"retry-after": later}) <= 30
    # the judge's backoff is lima.retry's policy with the client's bounds
    backoff = Backoff(0.5, MAX_BACKOFF_S, MAX_RETRY_AFTER_S)

    def delay(attempt: int, retry_after: float | None) -> float:
        error = type("E", (Exception,), {"retry_after": retry_after})()
        state = type("S", (), {"attempt_number": attempt + 1})()
        state.outcome = type("O", (), {"exception": lambda self: error})()
        return backoff(state)

    assert delay(3, retry_after=7.0) == 7.0 and delay(0, 900.0) == MAX_RETRY_AFTER_S
    delays = [delay(attempt, None) for attempt in range(10) for _ in range(20)]
    assert all(0 <= d <= MAX_BACKOFF_S for d in delays)
    assert max(delay(1, None) for _ in range(50)) <= 1.0  # 0.5 * 2**1


def test_verdict_cache_on_a_real_s3_endpoint(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(
        update={"judge_base_url": None, "judge_api_key": None, "judge_model": "judge-x"}
    )
    with ScriptedEndpoint(lambda body: Reply("Score: 3")) as endpoint:
        settings = settings.model_copy(update={"judge_base_url": endpoint.url})
        store = open_store(settings)
        items = [single(f"s{i}") for i in range(6)]
        first = make_judge(openai_spec(), settings, store).judge("likert", items)
        again = make_judge(openai_spec(), settings, store)
        second = again.judge("likert", items)
        assert endpoint.requests == 6 and again.hits == 6
    assert [v.value for v in second] == [v.value for v in first] == [3] * 6
    assert [v.prompt_id for v in second] == [f"s{i}" for i in range(6)]


def test_redirects_are_not_followed_and_odd_bodies_do_not_crash(tmp_path: Path) -> None:
    def responder(body: dict) -> Reply:
        pid = item_id(first_user_message(body))
        if pid == "moved":
            return Reply(status=307, headers={"Location": "http://example.invalid/v1"}, body="")
        if pid == "parts":
            payload = (
                '{"choices": [{"message": {"content": [{"type": "text", "text": "Score: 2"}]}}]}'
            )
            return Reply(body=payload)
        return Reply(body='{"choices": [{"message": {"content": "Score: 6 \\udcff"}}]}')

    with ScriptedEndpoint(responder) as endpoint:
        judge = make_judge(openai_spec(), judge_settings(tmp_path, endpoint.url))
        with pytest.raises(JudgeError, match="307 redirect"):
            judge.judge("likert", [single("moved"), single("parts"), single("odd")])
        parts, odd = judge.judge("likert", [single("parts"), single("odd")])
    assert endpoint.requests == 3 + 2  # nothing retried, nothing sent to the Location
    assert (parts.value, odd.value) == (2, 6)
