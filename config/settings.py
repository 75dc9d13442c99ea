"""Batchdesk settings, read from the environment (and an optional .env file) by django-environ."""

from __future__ import annotations

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # the SQLite file, the demo login; never committed
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")  # apps.console.checks warns
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

INSTALLED_APPS = [
    # apps.agents before django_q: its `qcluster` command wraps django-q2's to register the agent.
    "apps.agents",
    # django_q before apps.scheduling, whose admin unregisters django-q2's Schedule.
    "django_q",
    "apps.audit",
    "apps.catalog",
    "apps.engine",
    "apps.flows",
    "apps.notifications",
    "apps.scheduling",
    "apps.console",
    "apps.spreadsheet",
    "apps.api",
    "apps.extsys",
    "apps.console.apps.BatchdeskAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'batchdesk.sqlite3'}")}
# Workers run many short tasks: reconnecting for each one cost more than the task itself.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
    # BEGIN so that two writers queue on the busy timeout instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            # How long a writer waits for the lock before "database is locked" (the fault tests shorten it).
            "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=30.0),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Test runs get their own database (a file for SQLite: end-to-end tests share it with real
# processes), so that two runs on one machine never meet. tests/isolation.py sets the id.
TEST_RUN_ID = env.str("BATCHDESK_TEST_RUN", default="")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{TEST_RUN_ID or 'db'}.sqlite3")}
elif TEST_RUN_ID:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{TEST_RUN_ID}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue (django-q2) ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    # The queue's name: separate installations (or test runs) sharing one Redis differ here.
    "name": env.str("BATCHDESK_QUEUE_NAME", default="batchdesk"),
    "workers": env.int("Q_WORKERS", default=4),
    # Tasks are short except EXEC/PYTHON runs, which may take hours or days. A worker
    # killed by this timeout stops renewing its execution's lease and the dispatcher ends
    # it "agent lost"; our leases, not django-q2's retry, recover a task that was lost.
    "timeout": env.int("Q_TASK_TIMEOUT", default=7 * 24 * 3600),
    "retry": env.int("Q_TASK_TIMEOUT", default=7 * 24 * 3600) + 3600,
    "max_attempts": 1,
    "ack_failures": True,
    # The Execution table is the record of what ran; successful queue tasks need none.
    "save_limit": -1,
    "catch_up": False,
    "poll": 0.05,
    "label": "Queue",
    "ALT_CLUSTERS": {},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# whitenoise serves static files in every mode; finders spare `make run` a collectstatic.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.api.permissions.BatchPermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Batchdesk API",
    "DESCRIPTION": "Background tasks (Sunbird contract) and the control API of Batchdesk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs work without the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- OAuth2 for custom job types (SPEC §3) --------------------------------------------
OAUTH_TOKEN_URL = env.str("OAUTH_TOKEN_URL", default="")
OAUTH_CLIENT_ID = env.str("OAUTH_CLIENT_ID", default="")
OAUTH_CLIENT_SECRET = env.str("OAUTH_CLIENT_SECRET", default="")
OAUTH_ALLOW_INSECURE_TRANSPORT = env.bool("OAUTH_ALLOW_INSECURE_TRANSPORT", default=False)
if OAUTH_ALLOW_INSECURE_TRANSPORT:
    # oauthlib reads only this variable; the setting is the one switch that sets it.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

# --- The reference external system (apps/extsys) -------------------------------------
EXTSYS_CLIENT_ID = env.str("EXTSYS_CLIENT_ID", default="batchdesk-demo")
EXTSYS_CLIENT_SECRET = env.str("EXTSYS_CLIENT_SECRET", default="demo-secret")
EXTSYS_TOKEN_TTL = env.int("EXTSYS_TOKEN_TTL", default=3600)

# --- Batch schedule spreadsheet (SPEC §6) ---------------------------------------------
# Uploads and `load_schedule` refuse larger files, and workbooks with more data rows.
SPREADSHEET_MAX_BYTES = env.int("SPREADSHEET_MAX_BYTES", default=20 * 1024 * 1024)
SPREADSHEET_MAX_ROWS = env.int("SPREADSHEET_MAX_ROWS", default=50_000)

# --- Engine ---------------------------------------------------------------------------
BATCHDESK = {
    # Bytes of log kept per execution: the first and last halves, the middle elided.
    "LOG_MAX_BYTES": env.int("BATCHDESK_LOG_MAX_BYTES", default=512 * 1024),
    # An agent that has not beaten for this long is offline; its executions are recovered.
    "AGENT_HEARTBEAT_SECONDS": env.float("BATCHDESK_AGENT_HEARTBEAT_SECONDS", default=5.0),
    "AGENT_LOST_SECONDS": env.float("BATCHDESK_AGENT_LOST_SECONDS", default=30.0),
    # A RUNNING EXEC/PYTHON run renews this lease while its worker lives; past it, it is lost.
    "RUN_LEASE_SECONDS": env.float("BATCHDESK_RUN_LEASE_SECONDS", default=60.0),
    # A LOADED execution not picked up by a worker within this lease is handed out again.
    "DISPATCH_LEASE_SECONDS": env.float("BATCHDESK_DISPATCH_LEASE_SECONDS", default=15.0),
    # A WAITING execution is woken when what it waits for ends; the dispatcher rechecks it anyway
    # after this, or after half the time it has waited when that is longer (at most an hour).
    "WAIT_RECHECK_SECONDS": env.float("BATCHDESK_WAIT_RECHECK_SECONDS", default=300.0),
    # A database outage: work that must not be lost (a run's outcome, a heartbeat at start) is
    # retried with back-off for this long before it gives up (apps/faults.py).
    "DB_RETRY_SECONDS": env.float("BATCHDESK_DB_RETRY_SECONDS", default=600.0),
    # The worker's environment variables an EXEC job gets (names, or patterns like LC_*), besides
    # its own BATCH_* variables; nothing else of the worker's environment reaches it.
    "EXEC_ENV": env.list("BATCHDESK_EXEC_ENV",
                         default=["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TZ", "TMPDIR"]),
    # How often a running EXEC/PYTHON job checks for a kill request and flushes its log.
    "RUNNER_CHECK_SECONDS": env.float("BATCHDESK_RUNNER_CHECK_SECONDS", default=0.5),
    # Grace between SIGTERM and SIGKILL when a process group is killed.
    "KILL_GRACE_SECONDS": env.float("BATCHDESK_KILL_GRACE_SECONDS", default=2.0),
    # "Long running": runtime above threshold_runtime_seconds, else above average × this.
    "LONG_RUNNING_MULTIPLIER": env.float("BATCHDESK_LONG_RUNNING_MULTIPLIER", default=2.0),
    # Custom job types: a handed-out poll not done within this lease is handed out again;
    # executions per poll task (fewer, larger tasks cost less queue overhead); threads per
    # worker process that make the Status calls; consecutive Status failures that end an
    # execution in ERROR.
    "POLL_LEASE_SECONDS": env.float("BATCHDESK_POLL_LEASE_SECONDS", default=60.0),
    "POLL_BATCH_SIZE": env.int("BATCHDESK_POLL_BATCH_SIZE", default=200),
    "POLL_THREADS": env.int("BATCHDESK_POLL_THREADS", default=16),
    "POLL_FAILURE_LIMIT": env.int("BATCHDESK_POLL_FAILURE_LIMIT", default=5),
    # Schedules: a slot older than this when the dispatcher reaches it was missed (downtime)
    # and follows the misfire policy; run_all fires at most this many missed slots.
    "MISFIRE_GRACE_SECONDS": env.float("BATCHDESK_MISFIRE_GRACE_SECONDS", default=60.0),
    "MISFIRE_RUN_ALL_CAP": env.int("BATCHDESK_MISFIRE_RUN_ALL_CAP", default=100),
    "DISPATCHER_TICK_SECONDS": env.float("BATCHDESK_DISPATCHER_TICK_SECONDS", default=1.0),
    # The dispatcher runs each custom job type's system check this often (0 = only on demand).
    "SYSTEM_CHECK_SECONDS": env.float("BATCHDESK_SYSTEM_CHECK_SECONDS", default=60.0),
    # How often the dispatcher looks for newly long-running executions (to notify, once each).
    "LONG_RUNNING_SCAN_SECONDS": env.float("BATCHDESK_LONG_RUNNING_SCAN_SECONDS", default=15.0),
    # Outgoing notifications: the webhook's timeout.
    "NOTIFY_TIMEOUT_SECONDS": env.float("BATCHDESK_NOTIFY_TIMEOUT_SECONDS", default=10.0),
}

# --- Notifications (apps/notifications) ----------------------------------------------
# E-mail through Django's mail settings: EMAIL_URL (smtp://user:password@host:587/?tls=True, or
# consolemail:// to print them), and the sender.
vars().update({key: value for key, value in env.email_url("EMAIL_URL", default="consolemail://").items()
               if value not in (None, "")})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="batchdesk@localhost")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Links in notifications point here (the console's address as operators reach it).
BATCHDESK_BASE_URL = env.str("BATCHDESK_BASE_URL", default="http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django-q": {"level": env.str("DJANGO_Q_LOG_LEVEL", default="WARNING")}},
}
