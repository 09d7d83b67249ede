"""gunicorn settings for the container: `gunicorn --config deploy/gunicorn.conf.py`.

Workers and threads come from GUNICORN_WORKERS and GUNICORN_THREADS; logs (gunicorn's own
and the access log) are JSON lines on stdout, like the application's.

gunicorn reads every module-level name that matches one of its settings, so helpers here
start with an underscore, and the `config` package must not be imported by name.
As in the settings, an empty value means the default, and a wrong one stops the server with
one line naming the variable (SystemExit: gunicorn prints a traceback for any other error).
"""

import logging
import os
from pathlib import Path


def _env_whole_number(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"Configuration error: {name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"Configuration error: {name} must be at least {minimum}, got {value}")
    return value


def _env_log_level() -> str:
    """LOG_LEVEL as config.env reads it: one of the standard level names, any letter case."""
    level = os.environ.get("LOG_LEVEL", "").strip() or "INFO"
    names = [name.lower() for name in logging.getLevelNamesMapping()]
    if level.lower() not in names:
        raise SystemExit(f"Configuration error: LOG_LEVEL must be one of {', '.join(names)}, got {level!r}")
    return level.upper()


_LOG_LEVEL = _env_log_level()

wsgi_app = "config.wsgi:application"
bind = ["0.0.0.0:8000"]  # noqa: S104 - inside a container, reached through the pod network only

# Threads let one worker wait on PostgreSQL, Redis or a git push while serving others.
workers = _env_whole_number("GUNICORN_WORKERS", 2)
threads = _env_whole_number("GUNICORN_THREADS", 4)
worker_class = "gthread"

# gthread workers: not a per-request limit, but kept above a write to a hanging git remote
# (a fetch and a push's two exchanges, 15 s each: gitops/remote.py).
timeout = 60
graceful_timeout = 25  # below the pod's terminationGracePeriodSeconds minus the preStop pause
keepalive = 5
# Recycle workers now and then so a slow leak never grows into an out-of-memory kill; rarely,
# because each recycled worker leaves its metric files behind (about 8 KiB, see
# PROMETHEUS_MULTIPROC_DIR below): at 50,000 requests a recycle, the pod's 64 MiB metrics volume
# holds some 400 million requests. GUNICORN_MAX_REQUESTS=0 turns recycling off.
max_requests = _env_whole_number("GUNICORN_MAX_REQUESTS", 50_000, minimum=0)
max_requests_jitter = max_requests // 10

# The heartbeat file is touched on every loop: keep it on a RAM filesystem, not the disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# gunicorn takes the scheme from X-Forwarded-* headers only from these addresses. Django reads
# X-Forwarded-Proto itself (SECURE_PROXY_SSL_HEADER, with DJANGO_BEHIND_PROXY) from any peer:
# with it on, the pod must be reachable only through the proxy (deploy/k8s/networkpolicy.yaml).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "").strip() or "127.0.0.1,::1"

# No runtime control socket: nothing in the pod should resize or reload the server, and the
# root filesystem is read-only anyway.
control_socket_disable = True

# The root filesystem is read-only: no pid file, logs to stdout only.
pidfile = None
loglevel = _LOG_LEVEL.lower()
accesslog = None  # the access log goes through logconfig_dict below
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" pid=%(p)s'  # which worker answered
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
    },
    "root": {"level": _LOG_LEVEL, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _LOG_LEVEL, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


# --- Prometheus metrics shared by the workers (prometheus-client's multiprocess mode) -----------
# With PROMETHEUS_MULTIPROC_DIR set (deploy/k8s/deployment.yaml: an emptyDir), every worker
# writes its metric values to files there and /metrics adds them up, whichever worker answers.


def on_starting(server):
    """Before the first worker: start from an empty directory. A restarted container keeps its
    emptyDir, and the files of the previous run's processes would be counted again."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    """A worker ended (recycled, killed, timed out): its live gauges stop counting. Its counters
    and histograms stay, so totals never go backwards."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
