"""Settings come from LIMA_* variables and `.env`; secrets are never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lima.settings import Settings, load_settings

SECRET = "sup3r-s3cret-value"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LIMA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # `.env` is read from the working directory


def test_defaults_are_the_embedded_file_backend() -> None:
    settings = load_settings()
    assert settings.s3_endpoint is None and settings.work_dir == Path(".lima")
    assert settings.artifacts_dir == Path(".lima/artifacts")
    assert settings.scratch_dir == Path(".lima/scratch")
    assert settings.describe().startswith("artifacts: file ")


def test_lima_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_S3_ENDPOINT", "minio.local:9000")
    monkeypatch.setenv("LIMA_S3_SECURE", "false")
    monkeypatch.setenv("LIMA_BUCKET", "exp")
    monkeypatch.setenv("LIMA_WORK_DIR", "/data/lima")
    monkeypatch.setenv("LIMA_S3_RETRIES", "7")
    monkeypatch.setenv("LIMA_RAY_ADDRESS", "auto")
    monkeypatch.setenv("S3_ENDPOINT", "ignored-without-prefix:1")
    settings = load_settings()
    assert (settings.s3_endpoint, settings.s3_secure, settings.bucket) == (
        "minio.local:9000",
        False,
        "exp",
    )
    assert settings.work_dir == Path("/data/lima") and settings.s3_retries == 7
    assert settings.describe() == "artifacts: s3 http://minio.local:9000; ray: auto"


def test_settings_are_read_again_when_the_environment_or_dotenv_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """load_settings() is reused while nothing it reads changed (the operator asks per call)."""
    first = load_settings()
    assert load_settings() is first
    monkeypatch.setenv("LIMA_BUCKET", "changed")
    assert load_settings().bucket == "changed"
    monkeypatch.delenv("LIMA_BUCKET")
    (tmp_path / ".env").write_text("LIMA_S3_RETRIES=9\n")
    assert load_settings().s3_retries == 9
    (tmp_path / ".env").write_text("LIMA_S3_RETRIES=11\n")
    assert load_settings().s3_retries == 11
    assert load_settings(bucket="override").bucket == "override"


def test_dotenv_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"LIMA_S3_ENDPOINT=https://s3.example.com\nLIMA_S3_SECRET_KEY={SECRET}\n"
        "LIMA_S3_ACCESS_KEY=AKIAEXAMPLE\nLIMA_BUCKET=from-dotenv\nOTHER_TOOL=x\n"
    )
    settings = load_settings()
    assert settings.s3_endpoint == "s3.example.com" and settings.s3_secure is True
    assert settings.s3_secret_key.get_secret_value() == SECRET
    assert settings.bucket == "from-dotenv"
    monkeypatch.setenv("LIMA_BUCKET", "from-env")
    assert load_settings().bucket == "from-env"


def test_endpoint_url_sets_tls() -> None:
    assert Settings(s3_endpoint="http://127.0.0.1:9000/", _env_file=None).s3_secure is False
    https = Settings(s3_endpoint="https://minio:9000", s3_secure=False, _env_file=None)
    assert (https.s3_endpoint, https.s3_secure) == ("minio:9000", True)
    assert Settings(s3_endpoint="", _env_file=None).s3_endpoint is None
    with pytest.raises(ValueError, match="host:port or an http"):
        Settings(s3_endpoint="ftp://x", _env_file=None)


def test_secrets_are_never_printed(caplog: pytest.LogCaptureFixture, capsys) -> None:
    settings = Settings(
        s3_endpoint="minio:9000",
        s3_access_key="AKIAEXAMPLE",
        s3_secret_key=SECRET,
        judge_api_key=SECRET + "-judge",
        hf_token=SECRET + "-hf",
        _env_file=None,
    )
    logging.getLogger("test").warning("settings: %s / %r", settings, settings)
    print(settings, repr(settings), settings.describe(), settings.model_dump_json())
    shown = caplog.text + capsys.readouterr().out + str(settings.model_dump())
    assert SECRET not in shown and "AKIAEXAMPLE" not in shown
    assert "**********" in shown
    assert settings.judge_api_key.get_secret_value() == SECRET + "-judge"  # still usable


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("LIMA_S3_ENDPOINT", f"ftp://user:{SECRET}@x", "must be host:port or an http(s)://"),
        ("LIMA_S3_ENDPOINT", f"http://user:{SECRET}@minio:9000", "with no path"),
        ("LIMA_S3_ENDPOINT", f"minio:9000/{SECRET}", "with no path"),
        ("LIMA_S3_RETRIES", f"{SECRET}", "valid integer"),
        ("LIMA_S3_TIMEOUT_S", "inf", "finite number"),
        ("LIMA_BUCKET", f"Not_A_Bucket-{SECRET}", "should match pattern"),
    ],
)
def test_a_bad_setting_names_the_variable_never_a_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, rule: str
) -> None:
    """Issue 13: pydantic would print `input_value={...}` with every setting, keys included."""
    from lima.errors import SettingsError

    monkeypatch.setenv("LIMA_S3_SECRET_KEY", SECRET)
    monkeypatch.setenv("LIMA_S3_ACCESS_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid settings: {name}: ") and rule in message
    assert SECRET not in message and "AKIAEXAMPLE" not in message
    assert caught.value.__cause__ is None and caught.value.exit_code == 2
    with pytest.raises(ValueError) as raw:  # constructing Settings directly hides inputs too
        Settings()
    assert SECRET not in str(raw.value) and "AKIAEXAMPLE" not in str(raw.value)
    assert "input_value" not in str(raw.value)
