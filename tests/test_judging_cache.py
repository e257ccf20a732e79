"""The verdict cache: digested entries, bad entries ignored and asked again (with a warning
naming them), invalid replies never cached. Real store (file backend), real HTTP judge."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from scripted_endpoint import Reply, ScriptedEndpoint, first_user_message

from lima.judging import Item, make_judge
from lima.judging.cache import NAMESPACE
from lima.settings import Settings
from lima.spec.evaluate import JudgeSpec
from lima.store import open_store

SPEC = JudgeSpec(backend="openai", model="judge-x", max_retries=0, backoff_s=0.01)
ITEM = Item("q1", "Name a colour.", "Blue.")


def _entries(settings: Settings) -> list[Path]:
    return sorted(settings.work_dir.rglob(f"{NAMESPACE}/*.json"))


@pytest.fixture
def endpoint():
    with ScriptedEndpoint(lambda body: Reply("Looks fine.\nPass")) as server:
        yield server


def _judge(tmp_path: Path, url: str):
    settings = Settings(work_dir=tmp_path / "work", judge_base_url=url, _env_file=None)
    return settings, make_judge(SPEC, settings, open_store(settings))


def test_a_valid_verdict_is_stored_digested_and_reused(tmp_path: Path, endpoint) -> None:
    settings, judge = _judge(tmp_path, endpoint.url)
    [first] = judge.judge("absolute", [ITEM])
    [entry] = _entries(settings)
    assert b'"digest"' in entry.read_bytes() and b'"material"' in entry.read_bytes()
    _, again = _judge(tmp_path, endpoint.url)
    assert again.judge("absolute", [ITEM]) == [first] and again.hits == 1
    assert endpoint.requests == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # truncated: used to crash judge with a traceback
        lambda raw: raw.replace(b'"pass"', b'"excellent"'),  # edited without re-digesting
        lambda raw: raw.replace(b'"digest":"', b'"digest":"0'),
        lambda raw: b"\xff\xfe not json",
        lambda raw: b'{"v": 2}',
    ],
    ids=["truncated", "edited", "bad-digest", "binary", "missing-fields"],
)
# unparseable bytes are refused (and named) by the store itself; well-formed entries that fail
# their digest or belong to no verdict by the judge's cache, which counts them
def test_a_bad_entry_is_ignored_recomputed_and_named(
    tmp_path: Path, endpoint, damage, caplog: pytest.LogCaptureFixture
) -> None:
    settings, judge = _judge(tmp_path, endpoint.url)
    judge.judge("absolute", [ITEM])
    [entry] = _entries(settings)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    _, again = _judge(tmp_path, endpoint.url)
    assert damage(good) != good
    with caplog.at_level(logging.WARNING):
        [verdict] = again.judge("absolute", [ITEM])
    assert verdict.value == "pass" and endpoint.requests == 2  # asked again, not trusted
    assert entry.name in caplog.text and "ignor" in caplog.text
    parseable = damage(good).startswith(b"{") and damage(good).endswith(b"}")
    assert again.bad_entries == ([f"{NAMESPACE}/{entry.name}"] if parseable else [])
    assert entry.read_bytes() == good  # rewritten with the fresh verdict


def test_unparseable_replies_are_not_cached(tmp_path: Path) -> None:
    replies = iter(["no idea", "still no idea", "Fine.\nFail"])

    def responder(body: dict) -> Reply:
        assert "Blue." in first_user_message(body)
        return Reply(next(replies))

    with ScriptedEndpoint(responder) as server:
        settings, judge = _judge(tmp_path, server.url)
        [invalid] = judge.judge("absolute", [ITEM])  # a reply, then its one follow-up
        assert not invalid.valid and _entries(settings) == []
        _, again = _judge(tmp_path, server.url)
        [verdict] = again.judge("absolute", [ITEM])  # asked again on the next run
    assert verdict.value == "fail" and again.misses == 1 and len(_entries(settings)) == 1
