"""Runtime settings: where things run and where artifacts live (never part of the spec).

Read from `LIMA_*` environment variables and a `.env` file. Credentials are `SecretStr`: their
repr is `'**********'`, and nothing in lima-run ever calls `get_secret_value()` except the
client constructors. A rejected setting names the variable and the rule, never a value: the
values sit next to the credentials, and pydantic would otherwise print them all
(`input_value={...}`) into CI and pod logs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lima.errors import SettingsError

# `host`, `host:port`, `[v6]:port`: what the S3 client accepts; no user info, path or query.
_HOST_PORT = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIMA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a validation error must never print the settings dict
    )

    s3_endpoint: str | None = None
    """`host:port` of MinIO or another S3 API; unset -> the local file backend."""

    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str | None = None
    s3_secure: bool = True
    """Use TLS to reach the S3 endpoint (set from the scheme when the endpoint is a URL)."""

    s3_retries: int = Field(default=5, ge=0, le=50)
    """Retries of a transient S3 failure (connection error, 5xx, throttling) before giving up."""

    s3_backoff_s: float = Field(default=0.5, ge=0, le=60, allow_inf_nan=False)
    """First retry delay; doubles on every retry (with jitter)."""

    s3_timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    """Read timeout of one S3 request."""

    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """Overrides `spec.storage.bucket`."""

    ray_address: str | None = None
    """Address of a running Ray cluster (`auto`, `ray://...`); unset -> a local Ray on demand."""

    work_dir: Path = Field(default=Path(".lima"))
    """Local folder for the file backend's artifacts and for scratch space."""

    judge_base_url: str | None = None
    """OpenAI-compatible endpoint of the judge (`http://vllm:8000/v1`)."""

    judge_api_key: SecretStr | None = None
    judge_model: str | None = None

    hf_token: SecretStr | None = None
    """Token for gated Hugging Face models (only used when the machine can download)."""

    @model_validator(mode="after")
    def _endpoint_host_port(self) -> Settings:
        """Accept `http://host:port` too: the S3 client wants `host:port` and a TLS flag."""
        endpoint = (self.s3_endpoint or "").strip()
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
            if scheme not in ("http", "https"):
                raise ValueError("must be host:port or an http(s):// URL (other scheme given)")
            endpoint = endpoint.rstrip("/")
            self.s3_secure = scheme == "https"
        if endpoint and not _HOST_PORT.match(endpoint):
            # Never echo it: a URL may carry `user:password@`.
            raise ValueError("must be host:port or an http(s)://host:port URL, with no path")
        self.s3_endpoint = endpoint or None
        return self

    @property
    def artifacts_dir(self) -> Path:
        return self.work_dir / "artifacts"

    @property
    def scratch_dir(self) -> Path:
        return self.work_dir / "scratch"

    def describe(self) -> str:
        """A one-line, secret-free description for logs."""
        where = (
            f"s3 {'https' if self.s3_secure else 'http'}://{self.s3_endpoint}"
            if self.s3_endpoint
            else f"file {self.artifacts_dir.resolve()}"
        )
        return f"artifacts: {where}; ray: {self.ray_address or 'local'}"


def describe_settings_error(error: ValidationError) -> str:
    """`LIMA_S3_ENDPOINT: must be ...` per problem: the variable and the rule, no value."""
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"]) or "s3_endpoint"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"LIMA_{field.upper()}: {message}")
    return "invalid settings: " + "; ".join(problems)


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment; a bad value is a SettingsError naming the variable.

    Without overrides the result is reused while the `LIMA_*` variables and `.env` stay the
    same: reading them costs ~15 ms of CPU (pydantic-settings inspects every field), and
    store and source look-ups ask for the settings on every call (the operator's cache check
    of every Experiment). Treat the returned object as read-only.
    """
    if overrides:
        return _read(**overrides)
    return _read_cached(_environment_digest())


def _read(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_settings_error(error)) from None
    except UnicodeDecodeError as error:  # `.env` in another encoding: name it, never its bytes
        dotenv = Path(".env").resolve()
        raise SettingsError(
            f"cannot read {dotenv}: not UTF-8 text (at byte offset {error.start})"
        ) from None


@functools.lru_cache(maxsize=4)
def _read_cached(_environment: str) -> Settings:
    return _read()


def _environment_digest() -> str:
    """A digest of what the settings are read from (a digest: no secret is kept as a key)."""
    variables = sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("LIMA_"))
    dotenv = Path(".env")
    try:
        stamp = (str(dotenv.resolve()), dotenv.stat().st_mtime_ns, dotenv.stat().st_size)
    except OSError:
        stamp = None
    return hashlib.sha256(repr((variables, stamp)).encode()).hexdigest()
