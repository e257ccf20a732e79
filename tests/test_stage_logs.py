"""Stage logs kept in the artifact store (lima.stage_logs), read back by `lima logs`; and
`lima data push`, which seeds a cluster's S3 with local data.

Both run against a real S3 API (moto, through the real minio client), as on a cluster: the log
of a stage is read after the process that ran it is gone, from the store alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from unittest import mock

import pytest
import yaml
from typer.testing import CliRunner

from lima.cli import app
from lima.dag import Stage
from lima.runner import run_experiment, run_single_stage
from lima.spec.load import parse_experiment
from lima.stage_logs import read_stage_log, stage_logs
from lima.store import open_store
from lima.transfer import push

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def s3_settings(s3_settings):
    """The suite's moto settings, from an empty S3: moto keeps buckets per process, not per
    server, so an earlier test's objects would otherwise still be there."""
    import urllib.request

    reset = f"http://{s3_settings.s3_endpoint}/moto-api/reset"
    urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=10).close()
    return s3_settings


def _talk(ctx) -> dict:
    print("hello from the stage")
    logging.getLogger("lima.test").warning("a warning worth keeping")
    (ctx.output_dir / "out.txt").write_text("talked\n")
    return {"ok": True}


def _fail(ctx) -> dict:
    print("about to fail")
    raise RuntimeError("boom in the stage")


TALK = Stage("talk", "1", (), lambda e: {"n": 1}, _talk)
FAIL = Stage("fail", "1", ("talk",), lambda e: {"n": 2}, _fail)


def experiment():
    document = yaml.safe_load((REPO / "examples/experiment-cluster.yaml").read_text())
    document["metadata"] = {"name": "logdemo"}
    return parse_experiment(document)


def s3_env(settings) -> dict[str, str]:
    return {
        "LIMA_S3_ENDPOINT": settings.s3_endpoint,
        "LIMA_S3_ACCESS_KEY": settings.s3_access_key.get_secret_value(),
        "LIMA_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "LIMA_S3_SECURE": "false",
        "LIMA_S3_REGION": "us-east-1",
        "LIMA_WORK_DIR": str(settings.work_dir),
    }


def test_stage_logs_outlive_the_process_and_show_with_lima_logs(s3_settings) -> None:
    exp = experiment()
    runs = run_experiment(exp, s3_settings, stages=[TALK, FAIL])
    assert [r.status for r in runs] == ["done", "failed"]
    store = open_store(s3_settings, exp.spec.storage)
    talk = read_stage_log(store, "logdemo", "talk")
    assert "hello from the stage" in talk and "a warning worth keeping" in talk
    failed = read_stage_log(store, "logdemo", "fail")
    assert "about to fail" in failed and "RuntimeError: boom in the stage" in failed
    # What a RayJob runs (`lima stage`): one more log for that stage, the newest shown.
    with pytest.raises(Exception, match="boom"):
        run_single_stage(exp, s3_settings, "fail", stages=[TALK, FAIL])
    assert len(stage_logs(store, "logdemo", "fail")) == 2

    # Later, from anywhere with the store's settings: nothing but the store is needed.
    with mock.patch.dict(os.environ, s3_env(s3_settings)):
        result = CliRunner().invoke(app, ["logs", "logdemo", "talk"])
        assert result.exit_code == 0, result.output
        assert "hello from the stage" in result.output
        listed = CliRunner().invoke(app, ["logs", "logdemo", "fail", "--list"])
        assert listed.output.count("s3://lima/lima/logs/logdemo/fail/") == 2
        missing = CliRunner().invoke(app, ["logs", "logdemo", "train"])
        assert missing.exit_code != 0 and "no log of stage 'train'" in str(missing.exception)


def test_data_push_seeds_s3_and_is_idempotent(s3_settings, tmp_path: Path) -> None:
    report = push(REPO / "examples/data", "s3://lima/demo/data", s3_settings)
    names = {uri.removeprefix("s3://lima/demo/data/") for uri in report.uploaded}
    assert "stackexchange/beer.stackexchange.com_Posts.xml" in names
    assert "eval/vicuna_question.jsonl" in names and report.unchanged == []
    again = push(REPO / "examples/data", "s3://lima/demo/data", s3_settings)
    assert again.uploaded == [] and len(again.unchanged) == len(report.uploaded)
    changed = tmp_path / "data"
    changed.mkdir()
    (changed / "a.jsonl").write_text('{"x": 1}\n')
    push(changed, "s3://lima/demo/mine", s3_settings)
    (changed / "a.jsonl").write_text('{"x": 2}\n')
    assert push(changed, "s3://lima/demo/mine", s3_settings).uploaded == [
        "s3://lima/demo/mine/a.jsonl"
    ]
    with mock.patch.dict(os.environ, s3_env(s3_settings)):
        result = CliRunner().invoke(app, ["data", "push", str(changed), "s3://lima/demo/mine"])
    assert result.exit_code == 0, result.output
    assert "0 uploaded, 1 unchanged -> s3://lima/demo/mine" in result.output


def test_data_push_refuses_a_local_destination(s3_settings) -> None:
    from lima.errors import SourceError

    with pytest.raises(SourceError, match="s3:// URI"):
        push(REPO / "examples/data", "/tmp/elsewhere", s3_settings)
