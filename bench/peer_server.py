"""The peer the token service is compared with, built and served by the benchmark itself.

dj-rest-auth + djangorestframework-simplejwt with cookie JWTs (RS256, rotation, blacklist),
argon2 and a bare JsonResponse view, from the templates in bench/peer/. It lives in a virtual
environment of its own under var/bench-peer/ (reused while its pins stay the same), so it never
becomes a dependency of the project. Its database and keys live in the run's directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.portal_server import ROOT, Server, gunicorn_server

PEER_DIR = ROOT / "var" / "bench-peer"
VENV = PEER_DIR / "venv"
PROJECT = PEER_DIR / "project"
TEMPLATES = Path(__file__).resolve().parent / "peer"
# The versions of the comparison; PyJWT and cryptography as the portal pins them
# (requirements.txt), so that RS256 itself is not one of the differences measured.
PINS = (
    "Django==5.2.19",
    "djangorestframework==3.18.3",
    "djangorestframework-simplejwt==5.5.1",
    "dj-rest-auth==7.2.0",
    "argon2-cffi==25.1.0",
    "gunicorn==27.0.1",
    "PyJWT==2.15.1",
    "cryptography==50.0.2",
)


def peer_python() -> Path:
    """The peer environment's interpreter, created (or re-created when the pins changed) first."""
    python, marker = VENV / "bin" / "python", VENV / "bench-pins.txt"
    wanted = "\n".join(PINS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"Building the peer's virtual environment in {VENV.relative_to(ROOT)} ...", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS], check=True
    )
    marker.write_text(wanted)
    return python


def project_write() -> None:
    """Write the peer's Django project from the templates (every run: they may have changed)."""
    package = PROJECT / "peer"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for name in ("settings.py", "urls.py", "wsgi.py"):
        shutil.copyfile(TEMPLATES / name, package / name)


def _keys_write(run_dir: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # as the portal's bench key
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (run_dir / "jwt-private.pem").write_bytes(private)
    (run_dir / "jwt-public.pem").write_bytes(public)


def peer_env(run_dir: Path) -> dict[str, str]:
    """The peer's environment for this run: its own database and RS256 key pair in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _keys_write(run_dir)
    # Nothing of the portal's own configuration (settings module, interpreter paths) may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        DJANGO_SETTINGS_MODULE="peer.settings",
        PEER_RUN_DIR=str(run_dir),
        PEER_SECRET_KEY=secrets.token_urlsafe(50),
    )
    return env


def peer_run(env: dict[str, str], code: str) -> str:
    """Run ``code`` in the peer's environment with Django set up; its standard output."""
    done = subprocess.run(
        [str(peer_python()), "-c", "import django; django.setup()\n" + code],
        cwd=PROJECT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"the peer failed to run {code!r}:\n{done.stderr[-2000:]}")
    return done.stdout


def peer_prepare(run_dir: Path, *, username: str, email: str, password: str) -> dict[str, str]:
    """A migrated peer with one user; its environment."""
    peer_python()
    project_write()
    env = peer_env(run_dir)
    peer_run(env, "from django.core.management import call_command; call_command('migrate', verbosity=0)")
    peer_run(
        env,
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user({username!r}, {email!r}, {password!r})",
    )
    return env


@contextmanager
def peer_gunicorn(env: dict[str, str], *, workers: int) -> Iterator[Server]:
    """The peer under gunicorn with sync workers, like the portal in the comparison."""
    with gunicorn_server(
        env,
        workers=workers,
        worker_class="sync",
        app="peer.wsgi:application",
        python=peer_python(),
        cwd=PROJECT,
    ) as server:
        yield server
