"""rolloutdesk settings: every deploy-specific value comes from the environment (django-environ).

With nothing set, rolloutdesk runs embedded: SQLite and a file-system Celery broker under var/,
console email. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis), EMAIL_URL
(SMTP), SECRET_KEY, ALLOWED_HOSTS and DEBUG=false.
"""

import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from csp.constants import NONCE as CSP_NONCE
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from apps.sso.group_map import parse_group_map

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("ROLLOUTDESK_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
    CSRF_TRUSTED_ORIGINS=(list, []),
    TIME_ZONE=(str, "UTC"),
    SECURE_SSL_REDIRECT=(bool, True),
    SECURE_HSTS_SECONDS=(int, 31536000),
)
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env("DEBUG")
# The insecure fallback key exists only for DEBUG runs and the test suite; anything else must
# set SECRET_KEY, and refuses to start without it.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or "pytest" in sys.modules):
        raise ImproperlyConfigured("Set the SECRET_KEY environment variable (or DEBUG=true).")
    SECRET_KEY = "insecure-dev-only-key-" + "x" * 40
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "apps.core",
    "apps.jobs",
    "apps.outbox",
    "apps.releases",
    "apps.checks",
    "apps.checklists",
    "apps.signoffs",
    "apps.incidents",
    "apps.rollouts",
    "apps.runbooks",
    "apps.api",
    "apps.demo",
    "apps.pages",
    "apps.reports",
    "apps.exporter",
    "apps.configuration",
    "apps.sso",
    "apps.slack",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # While single sign-on is on, the provider's origin may end a form (CSP form-action).
    "apps.sso.middleware.FormActionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL in a query-string or form value, a body over the limit: 400 / 413 naming it.
    "apps.core.middleware.BadInputMiddleware",
    "apps.api.throttling.FailedAuthThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "rolloutdesk.urls"
WSGI_APPLICATION = "rolloutdesk.wsgi.application"

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
                "apps.sso.context.sign_in",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'rolloutdesk.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write at once in the embedded mode: take the write lock at BEGIN
    # and wait for it, instead of failing with "database is locked" (see shared/stack-notes.md).
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    # A file (not :memory:) so that a Celery worker started by the tests sees the test data;
    # one per test run, so two runs side by side don't share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / f"test-rolloutdesk-{os.getpid()}.sqlite3")
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that reads the socket instead of a SELECT 1 round trip
        # on every request (apps/core/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "apps.core.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# The styled sign-in page (apps/pages/signoff_urls.py, templates/signoffs/login.html): the pages
# and the sign-off page share it; the admin keeps its own.
LOGIN_URL = "signoffs:login"
# Where signing in lands without ?next=: the dashboard (Django's default, /accounts/profile/,
# is no page here). The admin's own form always posts next=/admin/.
LOGIN_REDIRECT_URL = "pages:dashboard"

# --- email -------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="rolloutdesk <rolloutdesk@localhost>")
# Seconds an SMTP connection may hang before the send fails (and is retried): a mail server
# that is down must not hold a worker forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # kombu's file transport needs in and out to be the same folder, and a control folder of
    # its own (otherwise it creates ./control wherever the process was started).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A task is acknowledged after it ran, so a worker killed mid-task leaves it to another one;
# every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "rollouts-tick": {
        "task": "apps.rollouts.tasks.tick",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "checks-purge-samples": {
        "task": "apps.checks.tasks.purge_samples",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "signoffs-sweep": {
        "task": "apps.rollouts.tasks.signoffs_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "incidents-escalate": {
        "task": "apps.incidents.tasks.escalate",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "outbox-sweep": {
        "task": "apps.outbox.tasks.sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "reports-send-due": {
        "task": "apps.reports.tasks.send_due_reports",
        "schedule": 300.0,
        "options": {"expires": 280},
    },
}

# --- metric checks -------------------------------------------------------------------------
# Samples older than this are purged (hourly, in batches).
CHECKS_SAMPLE_RETENTION = env.int("CHECKS_SAMPLE_RETENTION_DAYS", default=30)
# The tick's slot: each release's criteria are evaluated at most once per this many seconds.
CHECKS_TICK_SECONDS = env.int("CHECKS_TICK_SECONDS", default=60)
# Two bad results further apart than this are two breaches, not one streak.
CHECKS_STREAK_GAP_SECONDS = env.int("CHECKS_STREAK_GAP_SECONDS", default=300)
# How far back a "within N % of baseline" criterion looks for the baseline.
CHECKS_BASELINE_LOOKBACK_HOURS = env.int("CHECKS_BASELINE_LOOKBACK_HOURS", default=24 * 7)
# The largest sample batch POST /api/v1/samples/ takes (bytes; larger: 413).
CHECKS_SAMPLES_MAX_BYTES = env.int("CHECKS_SAMPLES_MAX_BYTES", default=4 * 1024 * 1024)
# Read-only databases SQL metric sources may query: CHECKS_SQL_DATABASES=name=url;name2=url2
CHECKS_SQL_DATABASES = {
    name.strip(): url.strip()
    for name, _, url in (
        item.partition("=") for item in env("CHECKS_SQL_DATABASES", default="").split(";")
    )
    if name.strip() and url.strip()
}

# --- outgoing messages (the outbox) --------------------------------------------------------
# Every email and webhook post is a row first (apps/outbox). A worker's claim on a row holds this
# long: a worker killed mid-send is taken over after it (keep it above EMAIL_TIMEOUT and the
# webhook timeout, or a slow send could be taken over while it is still going).
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=120)
# A row nobody picked up this long after it was written (the broker was down) is sent by the
# every-minute sweep.
OUTBOX_PENDING_GRACE_SECONDS = env.int("OUTBOX_PENDING_GRACE_SECONDS", default=60)
# Backoff between attempts: the first wait, doubled each time, never longer than the longest.
OUTBOX_RETRY_FIRST_SECONDS = env.int("OUTBOX_RETRY_FIRST_SECONDS", default=30)
OUTBOX_RETRY_LONGEST_SECONDS = env.int("OUTBOX_RETRY_LONGEST_SECONDS", default=1800)
# Attempts per email before it stays failed for a person to send again from the admin
# (incident pages: INCIDENTS_DELIVERY_MAX_ATTEMPTS; reports: REPORTS_DELIVERY_MAX_ATTEMPTS).
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)

# --- sign-offs -----------------------------------------------------------------------------
# A person asked to sign and not yet signed is reminded at most once per this many hours.
SIGNOFF_REMINDER_HOURS = env.int("SIGNOFF_REMINDER_HOURS", default=24)
# Long polls of the gate (GET gate/?wait=N): how many requests of one web process may wait at
# once. 0 (the default) answers at once: a gunicorn sync worker waiting would serve nobody else.
# Under gthread workers allow fewer waiters than threads (docs/deploy.md, "Long polls").
GATE_LONG_POLL_WAITERS = env.int("GATE_LONG_POLL_WAITERS", default=0)
# The longest wait a poller may ask for, and how often a waiter looks at the kept verdict.
GATE_LONG_POLL_MAX_SECONDS = env.int("GATE_LONG_POLL_MAX_SECONDS", default=30)
GATE_LONG_POLL_INTERVAL = env.float("GATE_LONG_POLL_INTERVAL", default=0.5)
# CI's plain polls of gate/ and traffic/ answered in one query beside DRF (apps/api/reads.py);
# false sends every request through the DRF action (same answers, ~5x the CPU).
API_LEAN_READS = env.bool("API_LEAN_READS", default=True)
# How long a web process may answer those polls from its own copy of the token and the kept
# verdict, checked at every request against a stamp in Redis that every change replaces
# (apps/core/stamps.py): the bound on a copy only a crash or an outage could leave stale.
# 0 turns the copies off; they are kept only when the cache is Redis.
API_READ_CACHE_SECONDS = env.float("API_READ_CACHE_SECONDS", default=10)

# --- single sign-on (OpenID Connect, apps/sso, docs/sso.md) ----------------------------------
# Off unless OIDC_ISSUER is set: the provider's issuer URL, whose discovery document
# ({issuer}/.well-known/openid-configuration) gives every endpoint and the signing keys.
OIDC_ISSUER = env("OIDC_ISSUER", default="").rstrip("/")
OIDC_RP_CLIENT_ID = env("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", default="")
OIDC_RP_SCOPES = env("OIDC_SCOPES", default="openid email profile")
# The claim (ID token or userinfo) listing the person's groups; dotted for a nested one.
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", default="groups")
# IdP group -> rolloutdesk group, "a=Release managers;b=Approvers;c=Viewers;d=Product": every
# group on the right is managed, and re-set from the claims at each sign-in (apps/sso/mapping.py).
OIDC_GROUP_MAP = parse_group_map(env("OIDC_GROUP_MAP", default=""))
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", default="single sign-on")
OIDC_RP_SIGN_ALGO = env("OIDC_SIGN_ALGO", default="RS256")
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=5.0)
OIDC_CLOCK_SKEW_SECONDS = env.int("OIDC_CLOCK_SKEW_SECONDS", default=60)
# Local password sign-in (the sign-in page's form and the admin's); off only with SSO on.
SSO_PASSWORD_LOGIN = env.bool("SSO_PASSWORD_LOGIN", default=True)
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_STORE_ID_TOKEN = True  # sent back as id_token_hint when signing out at the provider
OIDC_OP_LOGOUT_URL_METHOD = "apps.sso.views.provider_logout_url"
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
if OIDC_ISSUER:
    if not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
        raise ImproperlyConfigured("OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET.")
    AUTHENTICATION_BACKENDS = ["apps.sso.backend.Backend"]
    if SSO_PASSWORD_LOGIN:
        AUTHENTICATION_BACKENDS.append("django.contrib.auth.backends.ModelBackend")
else:
    if not SSO_PASSWORD_LOGIN:
        raise ImproperlyConfigured(
            "SSO_PASSWORD_LOGIN=false needs single sign-on (OIDC_ISSUER): nobody could sign in."
        )
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

# --- sign-off from Slack (apps/slack, docs/signoffs.md#slack) --------------------------------
# Off unless both are set: the Slack app's bot token (chat:write, users:read,
# users:read.email, im:write) and its signing secret, which /slack/interactivity/ checks.
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
if bool(SLACK_BOT_TOKEN) != bool(SLACK_SIGNING_SECRET):
    raise ImproperlyConfigured(
        "Slack sign-offs need both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (one is set)."
    )
SLACK_API_URL = env.str("SLACK_API_URL", default="https://slack.com/api/")
SLACK_TIMEOUT = env.int("SLACK_TIMEOUT", default=10)
SLACK_MAX_ATTEMPTS = env.int("SLACK_MAX_ATTEMPTS", default=8)

# --- incidents -----------------------------------------------------------------------------
# The severity of an incident opened by a critical metric breach (sev1 … sev4).
INCIDENTS_BREACH_SEVERITY = env("INCIDENTS_BREACH_SEVERITY", default="sev2")
# The Alertmanager label naming the service (a receiver may override it: ?service_label=app).
INCIDENTS_ALERTMANAGER_SERVICE_LABEL = env(
    "INCIDENTS_ALERTMANAGER_SERVICE_LABEL", default="service"
)
# Seconds an outgoing webhook (Slack-compatible) may take before the post counts as failed.
INCIDENTS_WEBHOOK_TIMEOUT = env.float("INCIDENTS_WEBHOOK_TIMEOUT", default=5.0)
# Attempts per notification before it stays failed for a person to re-send from the admin.
INCIDENTS_DELIVERY_MAX_ATTEMPTS = env.int("INCIDENTS_DELIVERY_MAX_ATTEMPTS", default=10)

# --- reports -------------------------------------------------------------------------------
# Attempts per report email before it stays failed for a person to send again from the admin.
REPORTS_DELIVERY_MAX_ATTEMPTS = env.int("REPORTS_DELIVERY_MAX_ATTEMPTS", default=8)

# --- rate limits and the bench floor -------------------------------------------------------
# Mount /bench/floor/ (a constant JSON view, the benchmarks' framework floor). Off in production.
BENCH_FLOOR_VIEW = env.bool("BENCH_FLOOR_VIEW", default=False)
# Failed sign-ins and invalid API tokens one address may send per window before it gets 429.
HARDENING_FAILED_LOGIN_LIMIT = env.int("HARDENING_FAILED_LOGIN_LIMIT", default=10)
HARDENING_FAILED_TOKEN_LIMIT = env.int("HARDENING_FAILED_TOKEN_LIMIT", default=20)
HARDENING_WINDOW_SECONDS = env.int("HARDENING_WINDOW_SECONDS", default=300)
# Count the client by the proxy's X-Forwarded-For (only behind a proxy that sets it).
HARDENING_TRUST_X_FORWARDED_FOR = env.bool("HARDENING_TRUST_X_FORWARDED_FOR", default=False)


def default_cache(cache_url: str, broker_url: str) -> dict:
    """Where the cache (the rate-limit counters) lives: CACHE_URL when set; else the Redis
    broker's server, so every web process and machine shares one count; else (the embedded
    default, one runserver process) in process. `check --deploy` warns when it is not shared."""
    if cache_url:
        return environ.Env.cache_url_config(cache_url)
    if broker_url.startswith(("redis://", "rediss://")):
        # The next database of the broker's server, never the broker's own: clearing the cache
        # (FLUSHDB) must not drop queued tasks.
        parts = urlsplit(broker_url)
        broker_db = int(parts.path.strip("/") or 0)
        location = urlunsplit(parts._replace(path=f"/{(broker_db + 1) % 16}"))
        return {
            # Django's, reusing one client per pool (apps/core/cache.py: ~0.3 ms per call less).
            "BACKEND": "apps.core.cache.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": "rolloutdesk",
        }
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


CACHES = {"default": default_cache(env("CACHE_URL", default=""), CELERY_BROKER_URL)}

# --- REST framework ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.api.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Nesting depth, NUL, lone surrogates and number ranges checked in every JSON body.
    "DEFAULT_PARSER_CLASSES": [
        "apps.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        # DRF's HTML pages, allowed the inline style attributes of its own template (CSP).
        "apps.api.renderers.PolicyBrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # drf-spectacular plus every operation's error answers (400, 401/403, 404, 413, 429).
    "DEFAULT_SCHEMA_CLASS": "apps.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    # Requests per minute per token, person or address (429 with Retry-After beyond).
    "DEFAULT_THROTTLE_CLASSES": ["apps.api.throttling.ApiRateThrottle"],
    # API_RATE_LIMIT="" turns it off (the benchmarks do, to measure the API itself).
    "DEFAULT_THROTTLE_RATES": {"api": env("API_RATE_LIMIT", default="6000/minute") or None},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "rolloutdesk API",
    "DESCRIPTION": "Drive progressive rollouts from CI: register releases, ask the gate, advance.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ReleaseStatusEnum": "apps.releases.choices.ReleaseStatus",
        "StageStatusEnum": "apps.releases.choices.StageStatus",
        "IncidentStatusEnum": "apps.incidents.choices.IncidentStatus",
        # One severity scale for incidents and for the criteria that open them.
        "SeverityEnum": "apps.releases.choices.Severity",
    },
}

# --- rolloutdesk's own metrics for Prometheus (apps/exporter, docs/deploy.md) -----------------
# /metrics answers only once a bearer token or an allow-list of client networks is set (both
# set: both must hold); with neither it is a 404, so an embedded run exposes nothing.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network such as 10.0.0.0/8."
        ) from _exc
# The window of the windowed figures (criterion evaluations by provider and verdict).
METRICS_WINDOW_SECONDS = env.int("METRICS_WINDOW_SECONDS", default=300)

# --- security (production) ------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT")
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Content-Security-Policy (django-csp) -----------------------------------------------------
# Scripts and styles only from our own static files or an element carrying the request's nonce
# ({{ request.csp_nonce }}): text that slipped through escaping could not run. The report page
# alone adds style-src-attr 'unsafe-inline' (apps.reports.views): it shows the emailed report,
# whose styles must be inline for mail clients. docs/security.md, "Output".
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF, CSP_NONCE],
        "style-src": [CSP_SELF, CSP_NONCE],
        "img-src": [CSP_SELF, "data:"],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
