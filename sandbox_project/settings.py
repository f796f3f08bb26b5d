"""Settings for the sandbox platform: one file, configured from environment variables.

Every setting has a default that runs out of the box on one machine (SQLite, local Redis, local
Docker engine). Misconfiguration is reported by system checks in executions/checks.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dj_database_url

from executions.sandbox.languages import NAMES as LANGUAGE_NAMES
from executions.sandbox.languages import largest_default_memory_mb
from sandbox_project import host

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: bool) -> bool:
    value = os.getenv(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    value = os.getenv(name)
    return default if value is None or value == "" else int(value)


def envfloat(name: str, default: float) -> float:
    value = os.getenv(name)
    return default if value is None or value == "" else float(value)


def envstr(name: str, default: str) -> str:
    value = os.getenv(name)
    return default if value is None or value == "" else value


def envsecret(name: str, default: str) -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker and Kubernetes secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return envstr(name, default)


def with_redis_timeouts(url: str) -> str:
    """Give the web side's Redis client short timeouts, so that a dead Redis means a quick 503.

    rq's workers raise socket_timeout on their own connection to fit their blocking dequeue.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", "2")
    query.setdefault("socket_timeout", "5")
    return urlunsplit(parts._replace(query=urlencode(query)))


# The placeholder key is refused by the system check executions.W001 when DEBUG is off.
INSECURE_SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"
SECRET_KEY = envsecret("SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in envstr("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")]
# A refused CSRF check under /api/ answers in the API's error shape.
CSRF_FAILURE_VIEW = "executions.api.errors.csrf_failure"
CSRF_TRUSTED_ORIGINS = [o for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_rq",
    "django_prometheus",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "executions",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Requests under /api/ that carry an API key never use sessions, CSRF, messages, frame options or
# static files: sandbox_project/wsgi.py gives them a Django handler with only these. Their request
# metrics are two of django-prometheus's, not its whole set (executions.metrics.ApiRequestMetrics).
API_KEY_MIDDLEWARE = [
    "executions.metrics.ApiRequestMetrics",
    "django.middleware.security.SecurityMiddleware",
]

ROOT_URLCONF = "sandbox_project.urls"
WSGI_APPLICATION = "sandbox_project.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and several workers write to one file: WAL lets readers go on during a write,
    # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Test processes (workers, the CLI) must see the test database, so it is a file, not memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}

# django-prometheus's wrappers of Django's backends count queries and errors.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# For the browser page's users (add_member, createsuperuser): Django's usual checks.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The browser page's editor, CodeMirror 5, installed from npm by `scripts/dev.sh editor` (pinned in
# executions/editor/package-lock.json), served as /static/editor/: only the files a browser loads.
# Without it the page keeps its plain textarea.
EDITOR_DIR = BASE_DIR / "executions" / "editor" / "node_modules" / "codemirror"
STATICFILES_DIRS = [(f"editor/{part}", EDITOR_DIR / part) for part in ("lib", "mode", "addon") if (EDITOR_DIR / part).is_dir()]

REDIS_URL = with_redis_timeouts(envstr("REDIS_URL", "redis://127.0.0.1:6379/0"))


def instance_name(redis_url: str) -> str:
    url = urlsplit(redis_url)
    return f"{url.hostname}:{url.port or 6379}/{url.path.strip('/') or 0}"


# Sandbox containers carry this name; the janitor removes only its own instance's, so two
# platforms (or a platform and its tests) can share one engine. One Redis database, one instance.
SANDBOX_INSTANCE = envstr("SANDBOX_INSTANCE", instance_name(REDIS_URL))

# --- Sandbox limits -------------------------------------------------------------------------
SANDBOX_IMAGE = envstr("SANDBOX_IMAGE", "")  # empty: the image built by build_sandbox_images
SANDBOX_RUNTIME = envstr("SANDBOX_RUNTIME", "")  # empty: the engine's default (runc); or "runsc"
# Docker's default seccomp profile as a file (scripts/dev.sh fetches it from Debian): under runsc,
# runs get it with one change, clone3 left to gVisor (see the runner's runsc_seccomp_profile).
SANDBOX_SECCOMP_PROFILE = envstr("SANDBOX_SECCOMP_PROFILE", str(BASE_DIR / "var" / "seccomp" / "docker-default.json"))
# How the script and its stdin reach the container, as read-only root-owned files in /code:
# "bind" (default) writes them to a fresh directory under SANDBOX_CODE_ROOT and bind-mounts it
# read-only: the engine must see that path as the worker does (same host, or the same host path
# mounted at the same place in a worker's container). "copy" sends them through the engine's
# archive API instead, which works with a remote engine but costs about 55 ms of CPU per run.
SANDBOX_CODE_DELIVERY = envstr("SANDBOX_CODE_DELIVERY", "bind")
SANDBOX_CODE_ROOT = envstr("SANDBOX_CODE_ROOT", str(VAR_DIR / "sandbox-code"))
# Each worker keeps one sandbox created and started ahead of demand (executions.sandbox.premade),
# so that a run only delivers its code; with "bind" delivery only. Off: every run makes its own.
SANDBOX_MAKE_AHEAD = envbool("SANDBOX_MAKE_AHEAD", True)
SANDBOX_TIMEOUT_SECONDS = envfloat("SANDBOX_TIMEOUT_SECONDS", 5.0)
SANDBOX_MEMORY_MB = envint("SANDBOX_MEMORY_MB", 64)
SANDBOX_CPUS = envfloat("SANDBOX_CPUS", 0.5)
SANDBOX_PIDS_LIMIT = envint("SANDBOX_PIDS_LIMIT", 64)
# Under gVisor the runtime's own host threads (about 40, plus about 5 a sandboxed process) count
# against the pids limit, so runsc needs a higher one; its memory limit caps processes sooner.
SANDBOX_RUNSC_PIDS_LIMIT = envint("SANDBOX_RUNSC_PIDS_LIMIT", 256)
SANDBOX_TMPFS_MB = envint("SANDBOX_TMPFS_MB", 16)
SANDBOX_OUTPUT_LIMIT_BYTES = envint("SANDBOX_OUTPUT_LIMIT_BYTES", 64 * 1024)
SANDBOX_MAX_CODE_BYTES = envint("SANDBOX_MAX_CODE_BYTES", 64 * 1024)
SANDBOX_MAX_STDIN_BYTES = envint("SANDBOX_MAX_STDIN_BYTES", 64 * 1024)
# Judging (executions/judging.py): all of a submission's tests' stdin and expected outputs together
# may be this large; its tests, each at its wall ceiling one after the other, must fit in
# JUDGE_MAX_SECONDS (the rq job's timeout and the reconciler allow for it); JUDGE_PARALLEL_TESTS
# tests of one submission run at once, each in its own sandbox.
JUDGE_MAX_TESTS_BYTES = envint("JUDGE_MAX_TESTS_BYTES", 1024 * 1024)
JUDGE_MAX_SECONDS = envfloat("JUDGE_MAX_SECONDS", 240.0)
JUDGE_PARALLEL_TESTS = envint("JUDGE_PARALLEL_TESTS", 2)
# A judged execution's comparisons run outside its tests' time, within these of their own: each
# comparison, and all of them together (executions/comparing.py). Admission counts the total in
# JUDGE_MAX_SECONDS for a regex comparison, the only one that can come near it.
JUDGE_COMPARISON_SECONDS = envfloat("JUDGE_COMPARISON_SECONDS", 1.0)
JUDGE_COMPARISON_TOTAL_SECONDS = envfloat("JUDGE_COMPARISON_TOTAL_SECONDS", 10.0)
# Where the host's cgroup hierarchy is mounted: a test's CPU time and peak memory are read there,
# from a cgroup of its own that outlives its container (executions/sandbox/judge.py).
JUDGE_CGROUP_ROOT = envstr("JUDGE_CGROUP_ROOT", "/sys/fs/cgroup")
# Of each test's stdout and stderr, this much is kept with its result (all of it is compared).
JUDGE_KEPT_OUTPUT_BYTES = envint("JUDGE_KEPT_OUTPUT_BYTES", 8 * 1024)
# How long a finished execution stays in Redis for fast reads; the database keeps it for good.
RESULT_CACHE_TTL_SECONDS = envint("RESULT_CACHE_TTL_SECONDS", 300)

# --- Sandbox slots: how many sandboxes run at once on this host (one rq worker each) ---------
# More than 1 lets more sandboxes run than the cores hold at their full SANDBOX_CPUS: a run's CPU is
# capped, so at 1 the cores sit half idle while short runs wait behind capped loops (README, "Fair
# scheduling"). At 2, runs that want all their CPU at once take up to twice as long.
SANDBOX_OVERCOMMIT = envfloat("SANDBOX_OVERCOMMIT", 2.0)
# What a slot costs besides its sandbox's memory limit: its worker process, the engine's
# per-container processes and the sandbox it keeps made ahead (README, "Slots and supervision").
SANDBOX_SLOT_OVERHEAD_MB = envint("SANDBOX_SLOT_OVERHEAD_MB", 55)
# The sandbox memory a slot must hold: the largest any language's stage gets by default (a compile's
# 512 MiB; Java's run 256), not the platform's SANDBOX_MEMORY_MB for a Python one-liner.
SANDBOX_SLOT_MEMORY_MB = envint("SANDBOX_SLOT_MEMORY_MB", largest_default_memory_mb(SANDBOX_MEMORY_MB))
# Workers a host keeps, beyond SANDBOX_SLOTS, for the first run of a tenant with nothing running
# (executions/scheduler.py): another tenant's first run never waits for one tenant's loops to end.
SANDBOX_RESERVE_SLOTS = envint("SANDBOX_RESERVE_SLOTS", 1)
# The reserve's sandboxes take their memory too: the slots get what the host holds beside them.
SANDBOX_SLOTS = envint(
    "SANDBOX_SLOTS",
    host.sandbox_slots(
        host.cores(), host.available_memory_mb(), SANDBOX_CPUS, SANDBOX_SLOT_MEMORY_MB, SANDBOX_SLOT_OVERHEAD_MB,
        SANDBOX_OVERCOMMIT, SANDBOX_RESERVE_SLOTS,
    ),
)

# A JSON request carries the code and stdin escaped, so allow for escaping on top of both limits.
# A request's headers must arrive within this many seconds, else the connection is closed
# (sandbox_project/serve.py). granian has no deadline for bodies: see the README's Serving section.
REQUEST_BODY_TIMEOUT_SECONDS = envfloat("REQUEST_BODY_TIMEOUT_SECONDS", 10)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(
    1024 * 1024, 6 * (SANDBOX_MAX_CODE_BYTES + SANDBOX_MAX_STDIN_BYTES), 2 * JUDGE_MAX_TESTS_BYTES
)

# --- Tenant quotas: the global defaults; each tenant may override them in the admin -----------
# Every API request a tenant makes (submissions, polls, streams) counts. The default is far above
# what one tenant's clients need to keep a host's every slot busy (long-polling: one request an
# execution; 32 clients polling every 100 ms: 320 a second) and stops a runaway client at about a
# tenth of what the web tier serves on 2 cores; max_queued, not the rate, bounds its backlog.
TENANT_RATE_PER_MINUTE = envint("TENANT_RATE_PER_MINUTE", 30000)
TENANT_MAX_QUEUED = envint("TENANT_MAX_QUEUED", 1000)
# 0: no cap of its own; the scheduler shares the slots between the tenants that have work
# (executions/scheduler.py), and a tenant alone may use them all.
TENANT_MAX_RUNNING = envint("TENANT_MAX_RUNNING", 0)
TENANT_ALLOWED_LANGUAGES = [
    name.strip() for name in envstr("TENANT_ALLOWED_LANGUAGES", ",".join(LANGUAGE_NAMES)).split(",") if name.strip()
]
TENANT_RETENTION_DAYS = envint("TENANT_RETENTION_DAYS", 30)
# Back-pressure: beyond this many waiting executions, every submission gets 503 with Retry-After.
QUEUE_MAX_DEPTH = envint("QUEUE_MAX_DEPTH", 10000)
QUEUE_FULL_RETRY_AFTER_SECONDS = envint("QUEUE_FULL_RETRY_AFTER_SECONDS", 30)

# --- Queue ----------------------------------------------------------------------------------
SANDBOX_QUEUE = "sandbox"
# A tenant's first job when it has nothing running: every worker takes these first.
SANDBOX_EXPRESS_QUEUE = "sandbox-express"
RQ_QUEUES = {
    name: {
        "URL": REDIS_URL,
        "SERIALIZER": "rq.serializers.JSONSerializer",
        "DEFAULT_TIMEOUT": int(SANDBOX_TIMEOUT_SECONDS) + 120,
    }
    for name in (SANDBOX_QUEUE, SANDBOX_EXPRESS_QUEUE)
}
# Webhook deliveries: their own queue and workers, never a sandbox worker's (executions/webhooks.py).
WEBHOOK_QUEUE = "webhooks"
RQ_QUEUES[WEBHOOK_QUEUE] = {"URL": REDIS_URL, "SERIALIZER": "rq.serializers.JSONSerializer", "DEFAULT_TIMEOUT": 60}
RQ = {"WORKER_CLASS": "executions.worker.SandboxWorker"}
# Seconds between a worker's maintenance passes (janitor and reconciler).
WORKER_MAINTENANCE_INTERVAL = envint("WORKER_MAINTENANCE_INTERVAL", 30)

# --- Webhooks (README, "Webhooks") ---------------------------------------------------------------
# Processes that deliver webhooks, under `manage.py sandbox_workers` beside the sandbox workers.
WEBHOOK_WORKERS = envint("WEBHOOK_WORKERS", 1)
# Each attempt's connect and read timeouts; the whole attempt is cut off at about twice this.
WEBHOOK_TIMEOUT_SECONDS = envfloat("WEBHOOK_TIMEOUT_SECONDS", 10)
# How long a callback URL's host may take to resolve, at submission (a batch's names at once) and
# at each attempt: a slow resolver then answers 400 callback_url_unresolvable, never holds a thread.
WEBHOOK_RESOLVE_TIMEOUT_SECONDS = envfloat("WEBHOOK_RESOLVE_TIMEOUT_SECONDS", 3)
# Only this much of a receiver's answer is read (for the delivery log); the rest is dropped.
WEBHOOK_MAX_RESPONSE_BYTES = envint("WEBHOOK_MAX_RESPONSE_BYTES", 65536)
# Failed attempts are retried after WEBHOOK_RETRY_BASE_SECONDS, doubling (with jitter) up to
# WEBHOOK_RETRY_MAX_DELAY_SECONDS between attempts, for WEBHOOK_RETRY_SECONDS in all.
WEBHOOK_RETRY_BASE_SECONDS = envfloat("WEBHOOK_RETRY_BASE_SECONDS", 10)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = envfloat("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 3600)
WEBHOOK_RETRY_SECONDS = envint("WEBHOOK_RETRY_SECONDS", 24 * 3600)
# The CAs an https callback's certificate must chain to (a PEM file); empty: the system's.
WEBHOOK_CA_FILE = envstr("WEBHOOK_CA_FILE", "")
# After a rotation, deliveries carry a signature with the previous secret too for this long.
WEBHOOK_SECRET_OVERLAP_SECONDS = envint("WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600)
# Callback addresses are refused if they are not public (loopback, private, link-local, metadata...):
# these CIDRs (comma-separated) open specific ones, e.g. a receiver on the operator's own network.
WEBHOOK_ALLOWED_NETWORKS = [c.strip() for c in envstr("WEBHOOK_ALLOWED_NETWORKS", "").split(",") if c.strip()]

# --- Metrics --------------------------------------------------------------------------------
# If set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = envsecret("METRICS_TOKEN", "")
# If set, an rq worker also serves its metrics on this port (for workers on other hosts).
WORKER_METRICS_PORT = envint("WORKER_METRICS_PORT", 0)

# What GET /readyz checks. The web needs no Docker engine when the workers run elsewhere.
READYZ_CHECKS = [c.strip() for c in envstr("READYZ_CHECKS", "database,redis,docker").split(",") if c.strip()]

# --- API ------------------------------------------------------------------------------------
# How long a web process reuses an API key it looked up (and its tenant): a revoked key or a
# disabled tenant is refused everywhere within this many seconds. 0: look the key up every time.
API_KEY_CACHE_SECONDS = envfloat("API_KEY_CACHE_SECONDS", 1.0)
# Raw submissions and reads of finished executions answered on the web server's event loop, with
# submissions written in groups (executions/api/fastlane.py); 0: every request through Django.
FAST_LANE = envbool("FAST_LANE", True)
# Groups of submissions a web process writes at once. One measured best served on both databases
# (bench/ingest.py, quiet machine, same run: SQLite 3,502 against 2,202 req/s with 2, PostgreSQL
# 2,326 against 1,625): a second writer thread costs more in GIL hand-offs than it saves in waits.
FAST_LANE_FLUSHES = max(1, envint("FAST_LANE_FLUSHES", 1))
# Failed sign-ins (browser page and admin) allowed per user name and per client address within a
# window that starts at the first failure (executions.signin).
SIGNIN_ATTEMPTS_PER_USER = envint("SIGNIN_ATTEMPTS_PER_USER", 5)
SIGNIN_ATTEMPTS_PER_ADDRESS = envint("SIGNIN_ATTEMPTS_PER_ADDRESS", 20)
SIGNIN_WINDOW_SECONDS = envint("SIGNIN_WINDOW_SECONDS", 900)
# Reverse proxies in front of the web that append to X-Forwarded-For: the per-address sign-in limit
# then counts the address the outermost one saw, not the proxy's (executions.signin.client_address).
SIGNIN_TRUSTED_PROXIES = envint("SIGNIN_TRUSTED_PROXIES", 0)
# The web server's request threads per process (sandbox_project/serve.py reads the same variable).
WEB_THREADS = envint("WEB_THREADS", 32)
# How many requests per process may wait (?wait=N) at once: the other threads (8 by default) stay
# free for quick requests, and a request that finds no free slot gets its 202 at once.
WAIT_SLOTS = envint("WAIT_SLOTS", max(1, WEB_THREADS - 8))
# The tenant that Piston calls without a key in their path (/piston/api/v2/...) act for; empty: such
# calls are refused. Only for a trusted network: anyone who reaches the port spends that tenant's quotas.
PISTON_TENANT = envstr("PISTON_TENANT", "")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "executions.api.auth.ApiKeyAuthentication",
        # The browser page's calls: a signed-in member, with a CSRF token.
        "executions.api.auth.SessionTenantAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["executions.api.auth.IsTenant"],
    "DEFAULT_THROTTLE_CLASSES": ["executions.api.throttles.TenantRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["executions.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "executions.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI schema at /api/schema/ and its docs at /api/docs/, whose assets are served from here:
# the docs work without reaching any CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "rce",
    "DESCRIPTION": "Run untrusted Python and Bash scripts in locked-down, ephemeral sandboxes.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public; they describe the API, not any tenant's data.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI's default sends the schema's address to an online validator for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "ExecutionStatus": "executions.models.Execution.Status",
        "Language": "executions.sandbox.languages.CHOICES",
    },
    # The native API's operations are named from their path after /api/ (v1_executions_create), the
    # Judge0 and Piston dialects' by hand.
    "SCHEMA_PATH_PREFIX": "/api/",
    "PREPROCESSING_HOOKS": ["executions.api.schema.canonical_paths_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "executions.api.schema.closed_request_bodies",
    ],
}

# LOG_FORMAT=json writes one JSON object a line, for a log collector (sandbox_project/logs.py).
# Anything else is reported by the system check executions.E010, and plain is used meanwhile.
LOG_FORMAT = envstr("LOG_FORMAT", "plain")
LOG_FORMATS = ("plain", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "routine": {"()": "sandbox_project.logs.RoutineFilter"},
        "redact": {"()": "sandbox_project.logs.RedactFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "sandbox_project.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in LOG_FORMATS else "plain",
            "filters": ["routine", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # Django logs every 4xx answer as a warning: on a public API that is each client's mistake
    # (a wrong key, a bad body), counted in the metrics already. Server errors (5xx) still log.
    "loggers": {
        "django.request": {"level": envstr("LOG_LEVEL_REQUESTS", "ERROR")},
        # Each submission's "queued" line (executions.models.log_submitted) costs a line a request on
        # the submission path, 7 % of its CPU: off by default; the worker logs each run's start
        # (with its time in the queue) and end.
        "executions.state.submitted": {"level": "INFO" if envbool("LOG_SUBMISSIONS", False) else "WARNING"},
    },
}

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# HTTPS=1 where clients reach the platform over HTTPS (`check --deploy` passes with it).
HTTPS = envbool("HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    # Probes and scrapers talk plain HTTP inside the deployment.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preloading binds the whole domain to HTTPS in browsers: SECURE_HSTS_PRELOAD=0 to opt out.
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto.
if envbool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
