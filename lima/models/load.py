"""Resolve a base model to a local HF folder, add the chat tokens, load for inference.

Base forms (`spec.model.base`): `tiny` (built here from the training texts), a packaged
pretrained preset (`smollm2-135m`, `lima.models.presets`), a Hugging Face id
(downloaded only when the machine can; `HF_HUB_OFFLINE=1` uses the local cache or fails clearly),
a local folder, or `s3://bucket/prefix` of an HF-format folder (downloaded through lima.store).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lima.errors import SourceError
from lima.models import CHAT_FILE
from lima.settings import Settings
from lima.spec.model import ModelSpec


def _offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(v.strip().lower() in {"1", "true", "yes", "on"} for v in flags)


def _tiny_digest(spec: ModelSpec, texts: list[str]) -> str:
    digest = hashlib.sha256(spec.tiny.model_dump_json().encode())
    digest.update(f"{spec.user_token}|{spec.assistant_token}|{spec.eot_token}".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def _from_s3(uri: str, settings: Settings, scratch: Path) -> Path:
    from lima.store import s3_backend, split_s3_uri

    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    backend = s3_backend(settings, bucket)
    dest = scratch / "bases" / "s3" / bucket / prefix
    keys = list(backend.list(prefix))
    if not keys:
        raise SourceError(f"model {uri} holds no object")
    for key in keys:
        target = dest / key[len(prefix) :]
        if not target.is_file():
            backend.get_file(key, target)
    if not (dest / "config.json").is_file():
        raise SourceError(f"model {uri} is not an HF-format folder (no config.json)")
    return dest


def _from_hub(repo_id: str, settings: Settings) -> Path:
    from huggingface_hub import snapshot_download

    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        return Path(snapshot_download(repo_id, local_files_only=_offline(), token=token))
    except Exception as error:
        if _offline():
            raise SourceError(
                f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                "download it on a connected machine (huggingface-cli download) or use a "
                "path/s3:// base"
            ) from None
        raise SourceError(f"cannot download model {repo_id!r}: {type(error).__name__}") from None


def resolve_location(location: str, settings: Settings, scratch: Path) -> Path:
    """A local folder for an HF id, a local path or an s3:// HF folder (not `tiny`)."""
    if location.startswith("s3://"):
        return _from_s3(location, settings, scratch)
    path = Path(location.removeprefix("file://")).expanduser()
    if path.exists() or location.startswith((".", "/", "~", "file://")):
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise SourceError(f"model path {location} is not an HF-format folder")
        return path
    return _from_hub(location, settings)


def resolve_base(
    spec: ModelSpec,
    settings: Settings,
    scratch: Path,
    texts: Iterable[str] | None = None,
) -> Path:
    """A local HF folder for `spec.base`. `tiny` needs `texts` (the tokenizer's training data)
    and is cached under `scratch/bases/tiny-<digest>`."""
    if spec.base == "tiny":
        if texts is None:
            raise ValueError("the tiny preset needs the training texts to train its tokenizer")
        from lima.models.tiny import build_tiny

        texts = list(texts)
        out = Path(scratch) / "bases" / f"tiny-{_tiny_digest(spec, texts)}"
        if not (out / CHAT_FILE).is_file():
            build_tiny(spec, texts, out)
        return out
    from lima.models.presets import PRESETS, build_gguf_preset

    if spec.base in PRESETS:  # a pretrained model shipped in a package (no hub needed)
        return build_gguf_preset(PRESETS[spec.base], Path(scratch))
    return resolve_location(spec.base, settings, Path(scratch))


def resolve_tokenizer(spec: ModelSpec, settings: Settings, scratch: Path, base_dir: Path) -> Path:
    """Folder of the tokenizer: `spec.tokenizer` when set, else the base folder."""
    if not spec.tokenizer or spec.base == "tiny":
        return base_dir
    return resolve_location(spec.tokenizer, settings, Path(scratch))


def _partitioned(param: Any) -> bool:
    return hasattr(param, "ds_id")  # DeepSpeed ZeRO-3 marks partitioned parameters this way


def add_special_tokens(model: Any, tokenizer: Any, spec: ModelSpec) -> list[str]:
    """Add the user/assistant/EOT tokens missing from `tokenizer`, resize the embeddings and the
    output head (tied ones stay tied), and start the new rows as `lima.models.embeddings`
    explains (EOT from the base's EOS). Returns the tokens added."""
    from lima.models.embeddings import init_new_rows

    base_vocab = len(tokenizer)
    missing = add_chat_tokens(tokenizer, spec)
    old_rows = model.get_input_embeddings().weight.shape[0]
    if _partitioned(model.get_input_embeddings().weight):
        old_rows = model.get_input_embeddings().weight.ds_shape[0]
    resized = len(tokenizer) > old_rows
    if resized:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if missing or resized:  # new rows, or spare rows of a padded matrix now holding a token
        init_new_rows(model, tokenizer, spec, base_vocab if missing else old_rows)
    return missing


def add_chat_tokens(tokenizer: Any, spec: ModelSpec) -> list[str]:
    """Tokenizer-only part of `add_special_tokens` (same ids, deterministic order)."""
    vocab = tokenizer.get_vocab()
    wanted = [spec.user_token, spec.assistant_token, spec.eot_token]
    missing = [t for t in wanted if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = spec.eot_token  # padding is always masked; any id works
    return missing


def write_chat_file(folder: Path, spec: ModelSpec) -> None:
    from lima.models.chat_export import write_chat_file as write

    write(Path(folder), spec)


def read_chat_tokens(folder: Path) -> dict[str, str]:
    path = Path(folder) / CHAT_FILE
    if path.is_file():
        return json.loads(path.read_text())
    defaults = ModelSpec()
    return {
        "user_token": defaults.user_token,
        "assistant_token": defaults.assistant_token,
        "eot_token": defaults.eot_token,
    }


def load_for_inference(path: Path | str, device: str = "cpu") -> tuple[Any, Any, int]:
    """(model in eval mode on `device`, tokenizer, EOT id) of a folder written by lima-run
    (a consolidated epoch of the train stage, or a base prepared by `resolve_base`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    eot = read_chat_tokens(path)["eot_token"]
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    if eot_id is None or eot_id == tokenizer.unk_token_id:
        raise SourceError(f"model {path} has no EOT token {eot!r} in its tokenizer")
    return model, tokenizer, int(eot_id)
