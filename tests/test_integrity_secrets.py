"""Issue 13: with every secret set, no CLI command, stage, log or stored object shows one.

Each command runs as a user runs it (`python -m lima.cli`, its own process, `-v` for the most
logging) against a real S3 API (moto's server, through the minio client) with unique secret
values; then stdout, stderr, every file under the work and project folders and every object in
every bucket are searched for them. A command added to the CLI without being listed here fails
`test_every_command_is_covered`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SECRETS = {
    "LIMA_S3_ACCESS_KEY": "AKIALEAKCANARY7F3E",
    "LIMA_S3_SECRET_KEY": "s3-secret-canary-9d2a71c4",
    "LIMA_JUDGE_API_KEY": "sk-judge-canary-5b8e02",
    "LIMA_HF_TOKEN": "hf_tokencanary41c7",
}

# (arguments, exit codes accepted); `{spec}` is the experiment file, `{dir}` a scratch folder.
COMMANDS: list[tuple[list[str], set[int]]] = [
    (["validate", "{spec}"], {0, 2}),
    (["validate", "--offline", "{spec}"], {0, 2}),
    (["plan", "{spec}"], {0}),
    (["run", "--dry-run", "{spec}"], {0}),
    (["stage", "nosuchstage", "{spec}"], {2}),
    (["status"], {0}),
    (["status", "demo", "--output", "json"], {0, 2}),
    (["lineage", "demo"], {0, 2}),
    (["report", "demo"], {0, 2}),
    (["verify", "demo"], {0, 2}),
    (["gc"], {0}),
    (["gc", "--apply", "--min-age-h", "0"], {0}),
    (["diff", "run-a", "run-b"], {2}),
    (["logs", "demo", "curate"], {0, 2}),
    (["init", "{dir}/new", "--name", "fresh"], {0}),
    (["crd"], {0}),
    (["docs"], {0}),
    (["data", "push", "{dir}/new", "s3://pushed/data"], {0}),
]


def demo_spec(folder: Path) -> Path:
    shutil.copytree(REPO / "examples" / "data", folder / "data")
    document = yaml.safe_load((REPO / "examples" / "experiment.yaml").read_text())
    for source in document["spec"]["data"]["sources"]:
        source["uri"] = source["uri"].removeprefix("examples/")
    for prompt_set in document["spec"]["generate"]["prompt_sets"]:
        prompt_set["uri"] = prompt_set["uri"].removeprefix("examples/")
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def environment(s3_server: dict[str, str], work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
    env.update(
        SECRETS,
        LIMA_S3_ENDPOINT=f"http://{s3_server['endpoint']}",
        LIMA_S3_REGION="us-east-1",
        LIMA_S3_RETRIES="1",
        LIMA_S3_BACKOFF_S="0.05",
        LIMA_WORK_DIR=str(work),
        LIMA_JUDGE_BASE_URL="http://127.0.0.1:9/v1",
    )
    env.update(extra)
    return env


def lima(
    args: list[str], env: dict[str, str], cwd: Path, *, verbose: bool = True, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lima.cli", *(["-v"] if verbose else []), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stored_text(s3_server: dict[str, str]) -> list[tuple[str, bytes]]:
    """Every object of every bucket of the S3 endpoint (what a run left behind)."""
    from minio import Minio

    client = Minio(
        s3_server["endpoint"],
        access_key=s3_server["access_key"],
        secret_key=s3_server["secret_key"],
        secure=False,
    )
    found = []
    for bucket in client.list_buckets():
        for item in client.list_objects(bucket.name, recursive=True):
            response = client.get_object(bucket.name, item.object_name)
            found.append((f"s3://{bucket.name}/{item.object_name}", response.read()))
            response.close()
            response.release_conn()
    return found


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in SECRETS.items() if value.encode() in data]


def assert_nothing_leaked(outputs: list[tuple[str, str]], folders: list[Path], s3_server) -> None:
    found = [(where, leaks(text)) for where, text in outputs]
    for folder in folders:
        found += [(str(p), leaks(p.read_bytes())) for p in folder.rglob("*") if p.is_file()]
    found += [(uri, leaks(data)) for uri, data in stored_text(s3_server)]
    assert [(where, names) for where, names in found if names] == []


@pytest.fixture
def moto_with_secrets(s3_server: dict[str, str]) -> dict[str, str]:
    """The moto server accepting our canary credentials (moto accepts any key pair)."""
    return {
        **s3_server,
        "access_key": SECRETS["LIMA_S3_ACCESS_KEY"],
        "secret_key": SECRETS["LIMA_S3_SECRET_KEY"],
    }


def test_every_command_is_covered() -> None:
    from lima.cli import app

    registered = {c.name or c.callback.__name__ for c in app.registered_commands}
    registered |= {g.name for g in app.registered_groups}
    covered = {args[0] for args, _ in COMMANDS}
    assert registered <= covered, f"add these commands to COMMANDS: {registered - covered}"


def test_no_command_shows_a_secret(moto_with_secrets, tmp_path: Path) -> None:
    spec = demo_spec(tmp_path / "project")
    work = tmp_path / "work"
    env = environment(moto_with_secrets, work)
    outputs = []
    for template, accepted in COMMANDS:
        args = [a.format(spec=spec, dir=tmp_path) for a in template]
        done = lima(args, env, tmp_path / "project")
        assert done.returncode in accepted, (args, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        outputs += [(f"{args} stdout", done.stdout), (f"{args} stderr", done.stderr)]
    assert_nothing_leaked(outputs, [tmp_path], moto_with_secrets)


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://user:{secret}@minio:9000",
        "http://user:{secret}@minio:9000",
        "minio:9000/{secret}",
        "http://minio:9000?key={secret}",
    ],
)
def test_a_malformed_endpoint_fails_in_one_line_without_values(
    moto_with_secrets, tmp_path: Path, endpoint: str
) -> None:
    secret = SECRETS["LIMA_S3_SECRET_KEY"]
    env = environment(moto_with_secrets, tmp_path, LIMA_S3_ENDPOINT=endpoint.format(secret=secret))
    done = lima(["status"], env, tmp_path, verbose=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        done.stderr.strip().splitlines()[0]
    ] and done.stderr.startswith("error: invalid settings: LIMA_S3_ENDPOINT: must be host:port")
    assert leaks(done.stdout + done.stderr) == []


def test_an_unreachable_store_fails_in_one_line(moto_with_secrets, tmp_path: Path) -> None:
    env = environment(moto_with_secrets, tmp_path, LIMA_S3_ENDPOINT="127.0.0.1:9")
    for args in (["status"], ["lineage", "demo"], ["verify", "demo"], ["gc"]):
        done = lima(args, env, tmp_path, verbose=False)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert "127.0.0.1:9" in lines[0] or "s3://" in lines[0]
        assert leaks(done.stdout + done.stderr) == []


def small_demo(folder: Path, judge_url: str) -> Path:
    """The demo at its smallest (2 epochs, few prompts, 16-token answers), judged by an
    OpenAI-compatible endpoint so LIMA_JUDGE_API_KEY is really sent."""
    path = demo_spec(folder)
    document = yaml.safe_load(path.read_text())
    spec = document["spec"]
    spec["train"].update(epochs=2, eligible_epochs=[1, 2])
    spec["data"]["splits"] = {"dev": 4, "test": 4}
    spec["generate"].update(max_new_tokens=16)
    spec["generate"]["prompt_sets"][1]["limit"] = 2
    spec["judge"].update(
        backend="openai", model="scripted", selection_prompts=2, protocols=["pairwise"]
    )
    path.write_text(yaml.safe_dump(document))
    return path


def _judge_reply(body: dict) -> object:
    from scripted_endpoint import Reply

    return Reply("Both fine, A reads better.\nAnswer A is significantly better.")


@pytest.mark.slow  # a whole small demo run on a local Ray: ~3-6 minutes on 2 shared cores
@pytest.mark.timeout(1800)
def test_a_full_run_with_secrets_leaves_none_behind(moto_with_secrets, tmp_path: Path) -> None:
    """`lima run` of the whole (tiny) demo with every secret set, the judge key sent to a real
    HTTP endpoint; then every output, file, stored object and Ray session log is searched."""
    import tempfile

    from scripted_endpoint import ScriptedEndpoint

    # Ray's session folder (logs of every worker) where the search below looks; a short path,
    # as Ray's unix sockets live there too.
    ray_tmp = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    outputs = []
    try:
        with ScriptedEndpoint(_judge_reply) as endpoint:
            spec = small_demo(tmp_path / "project", endpoint.url)
            env = environment(
                moto_with_secrets,
                tmp_path / "work",
                LIMA_JUDGE_BASE_URL=endpoint.url,
                RAY_TMPDIR=str(ray_tmp),
            )
            for args, accepted in (
                (["run", str(spec)], {0}),
                (["status", "demo"], {0}),
                (["lineage", "demo"], {0}),
                (["report", "demo"], {0}),
                (["verify", "demo"], {0}),
                (["logs", "demo", "judge"], {0}),
            ):
                done = lima(args, env, tmp_path / "project", timeout=1500)
                assert done.returncode in accepted, (args, done.stdout[-2000:], done.stderr[-2000:])
                assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])
                outputs += [(f"{args} stdout", done.stdout), (f"{args} stderr", done.stderr)]
            # The key was used (sent as a header to the judge), not merely set.
            bearer = f"Bearer {SECRETS['LIMA_JUDGE_API_KEY']}"
            assert endpoint.requests > 0 and set(endpoint.authorizations) == {bearer}
        sessions = list(ray_tmp.glob("**/session_*/logs"))  # RAY_TMPDIR/ray/session_.../logs
        assert sessions and any(p.is_file() for p in sessions[0].rglob("*"))
        assert_nothing_leaked(outputs, [tmp_path, ray_tmp], moto_with_secrets)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
