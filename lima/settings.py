"""Runtime settings: where things run and where artifacts live (never part of the spec).

Read from `LIMA_*` environment variables and a `.env` file. Credentials are `SecretStr`: their
repr is `'**********'`, and nothing in lima-run ever calls `get_secret_value()` except the
client constructors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIMA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    s3_endpoint: str | None = None
    """`host:port` of MinIO or another S3 API; unset -> the local file backend."""

    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str | None = None
    s3_secure: bool = True
    """Use TLS to reach the S3 endpoint (set from the scheme when the endpoint is a URL)."""

    s3_retries: int = Field(default=5, ge=0)
    """Retries of a transient S3 failure (connection error, 5xx, throttling) before giving up."""

    s3_backoff_s: float = Field(default=0.5, ge=0)
    """First retry delay; doubles on every retry (with jitter)."""

    s3_timeout_s: float = Field(default=30.0, gt=0)
    """Read timeout of one S3 request."""

    bucket: str | None = None
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
        endpoint = self.s3_endpoint
        if endpoint and "://" in endpoint:
            scheme, _, rest = endpoint.partition("://")
            if scheme not in ("http", "https"):
                raise ValueError(
                    f"s3_endpoint must be host:port or an http(s) URL (got {scheme}://)"
                )
            self.s3_endpoint = rest.rstrip("/")
            self.s3_secure = scheme == "https"
        if self.s3_endpoint == "":
            self.s3_endpoint = None
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


def load_settings() -> Settings:
    return Settings()
