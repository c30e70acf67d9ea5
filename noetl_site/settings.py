"""Settings, all from the environment (django-environ).

With nothing configured NoETL runs embedded: a SQLite file under NOETL_HOME
(``./.noetl`` by default) in WAL mode, and in-process dispatch. Setting
DATABASE_URL to a PostgreSQL URL and NATS_URL switches to distributed mode.
"""

import re
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from noetl_site import logs

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
NOETL_HOME = Path(env.str("NOETL_HOME", default=str(Path.cwd() / ".noetl")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="noetl-embedded-insecure-key")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "social_django",
    "accounts",
    "catalog",
    "executions",
    "credentials",
    "workers",
    "schedules",
    "search",
]

MIDDLEWARE = [
    "noetl_site.metrics.RequestMetricsMiddleware",
    "noetl_site.logs.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "noetl_site.middleware.BodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.audit.AuditActorMiddleware",
    "social_django.middleware.SocialAuthExceptionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "noetl_site.urls"
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
                "social_django.context_processors.backends",
            ]
        },
    }
]
WSGI_APPLICATION = "noetl_site.wsgi.application"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
)
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{NOETL_HOME / 'noetl.db'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": _SQLITE_PRAGMAS,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("TEST", {"NAME": env.str("NOETL_TEST_DB", default="test_noetl")})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files (the API docs page's vendored Swagger UI among them) are served
# by the web process itself, straight from the apps without collectstatic.
WHITENOISE_USE_FINDERS = True
# Until collectstatic has run there is no STATIC_ROOT, and that is fine here.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

# Credentials are encrypted with this key (Fernet-style, base64 32 bytes).
NOETL_ENCRYPTION_KEY = env.str("NOETL_ENCRYPTION_KEY", default="")
# Keys replaced by a rotation: they still decrypt until `rotatekeys` has run.
NOETL_ENCRYPTION_OLD_KEYS = env.list("NOETL_ENCRYPTION_OLD_KEYS", default=[])
NOETL_NATS_URL = env.str("NATS_URL", default="")
NOETL_NATS_NAMESPACE = env.str("NOETL_NATS_NAMESPACE", default="noetl")
if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", NOETL_NATS_NAMESPACE):
    raise ImproperlyConfigured(
        "NOETL_NATS_NAMESPACE must be 1-32 letters, digits, '-' or '_', "
        f"got {NOETL_NATS_NAMESPACE!r}"
    )
# Names a template may read through ``env`` (DSL section 2.1), comma separated.
NOETL_TEMPLATE_ENV = env.list("NOETL_TEMPLATE_ENV", default=[])
NOETL_TASK_TIMEOUT_S = env.float("NOETL_TASK_TIMEOUT_S", default=600.0)
NOETL_WORKERS = env.int("NOETL_WORKERS", default=4)

# The worker protocol's timers (DESIGN-NOTES R6, R7, R13). Tests shorten them.
NOETL_LEASE_TTL_S = env.float("NOETL_LEASE_TTL_S", default=30.0)
NOETL_HEARTBEAT_S = env.float("NOETL_HEARTBEAT_S", default=10.0)
NOETL_IDLE_POLL_S = env.float("NOETL_IDLE_POLL_S", default=2.0)
# A worker silent this long (killed, its host lost) is shown as gone and
# leaves the heartbeat metric; it is live again if it ever calls back.
NOETL_WORKER_GONE_AFTER_S = env.float("NOETL_WORKER_GONE_AFTER_S", default=600.0)
NOETL_DUTY_INTERVAL_S = env.float("NOETL_DUTY_INTERVAL_S", default=1.0)
# A queued command nobody claimed for this long gets its pointer republished.
NOETL_REPAIR_AFTER_S = env.float("NOETL_REPAIR_AFTER_S", default=10.0)
# The largest value a worker may upload as one blob (DESIGN-NOTES R11; a
# PostgreSQL bytea holds at most 1 GB). Uploads stream past Django's
# DATA_UPLOAD_MAX_MEMORY_SIZE, which is meant for forms.
NOETL_BLOB_MAX_BYTES = env.int("NOETL_BLOB_MAX_BYTES", default=512 * 1024 * 1024)
# A shared enrollment token any pool accepts (development and tests); pools
# created with ``manage.py createpool`` have their own.
NOETL_ENROLLMENT_TOKEN = env.str("NOETL_ENROLLMENT_TOKEN", default="")
# Semantic search (the optional extra): off, or on when installed. Vectors
# live in an embedded Qdrant store on disk (one process at a time) unless
# NOETL_QDRANT_URL names a Qdrant server.
NOETL_SEARCH = env.str("NOETL_SEARCH", default="on")
NOETL_QDRANT_URL = env.str("NOETL_QDRANT_URL", default="")
NOETL_QDRANT_PATH = env.str("NOETL_QDRANT_PATH", default=str(NOETL_HOME / "qdrant"))
# runscheduler indexes new playbooks and failed runs each round (by default
# when the index is a Qdrant server all processes share).
NOETL_SEARCH_INDEXER = env.bool("NOETL_SEARCH_INDEXER", default=bool(NOETL_QDRANT_URL))
# /metrics answers only callers sending this bearer token, when it is set.
NOETL_METRICS_TOKEN = env.str("NOETL_METRICS_TOKEN", default="")
# The control plane a worker (or `noetl --server`) talks to.
NOETL_SERVER = env.str("NOETL_SERVER", default="")

# The public REST API (/api/): a user's API token (Authorization: Bearer) or
# a browser session. NOETL_AUTH_DISABLED=true lets anonymous callers use it
# too, for a laptop only; the worker protocol keeps its own tokens either way.
NOETL_AUTH_DISABLED = env.bool("NOETL_AUTH_DISABLED", default=False)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["noetl_site.api.IsAuthenticatedUnlessDisabled"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
LOGIN_URL = "/api/auth/login/"
LOGIN_REDIRECT_URL = "/"  # the dashboard, as after an OAuth sign-in

# -- sign-in, cookies, limits (README "Security") ----------------------------
# OAuth sign-in through social-auth-app-django: the Auth0 backend, set up from
# the environment. Without AUTH0_DOMAIN only password sign-in is offered.
AUTHENTICATION_BACKENDS = [
    "social_core.backends.auth0.Auth0OAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_AUTH0_DOMAIN = env.str("AUTH0_DOMAIN", default="")
SOCIAL_AUTH_AUTH0_KEY = env.str("AUTH0_CLIENT_ID", default="")
SOCIAL_AUTH_AUTH0_SECRET = env.str("AUTH0_CLIENT_SECRET", default="")
SOCIAL_AUTH_AUTH0_SCOPE = ["openid", "profile", "email"]
# A CA bundle for an identity provider with a private CA (default: system CAs).
SOCIAL_AUTH_AUTH0_VERIFY_SSL = env.str("AUTH0_CA_BUNDLE", default="") or True
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/api/auth/login/"
SOCIAL_AUTH_JSONFIELD_ENABLED = True
# Users are matched by their Auth0 subject, never merged by e-mail address.
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "social_core.pipeline.user.get_username",
    "social_core.pipeline.user.create_user",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
    "social_core.pipeline.user.user_details",
)
# Sign-ins and token requests per client address and minute (Django's cache).
NOETL_SIGNIN_RATE = env.int("NOETL_SIGNIN_RATE", default=20)

# Cookies: never readable by scripts; sent over HTTPS only unless DEBUG (a
# laptop on plain http). NOETL_INSECURE_COOKIES=true lifts that for a server
# behind a plain-http test proxy.
_secure_cookies = not DEBUG and not env.bool("NOETL_INSECURE_COOKIES", default=False)
SESSION_COOKIE_SECURE = _secure_cookies
CSRF_COOKIE_SECURE = _secure_cookies
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("NOETL_SESSION_AGE_S", default=8 * 3600)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env.bool("NOETL_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Largest request body: workers upload blobs of a few MB; more is refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("NOETL_MAX_BODY_BYTES", default=16 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
SPECTACULAR_SETTINGS = {
    "TITLE": "NoETL API",
    "DESCRIPTION": "Playbooks, executions, credentials and runtime variables.",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["noetl_site.api.IsAuthenticatedUnlessDisabled"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "FireStatusEnum": "schedules.models.FireStatus",
        "FireKindEnum": "schedules.models.FireKind",
    },
}

# One line per record: JSON for log shippers, text for people; auto picks
# text on a terminal (noetl_site.logs).
try:
    LOGGING = logs.logging_config(
        env.str("NOETL_LOG_FORMAT", default="auto"),
        env.str("NOETL_LOG_LEVEL", default="WARNING"),
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
