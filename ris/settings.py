"""Settings for the RIS, read from the environment (django-environ).

One settings module serves development, tests and production; the environment decides.
Defaults are the zero-setup embedded mode: SQLite under var/, Celery eager, DEBUG on.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from ris.config import DEV_SECRET_KEY, check_secret_key, parse_tat_targets

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
# Without DEBUG the development key (or a placeholder) refuses to start: ImproperlyConfigured.
check_secret_key(SECRET_KEY, debug=DEBUG)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env("RIS_VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "django_prometheus",
    "ris",
    "audit",
    "registration",
    "scheduling",
    "worklist",
    "imaging",
    "reports",
    "department",
    "integration",
    "fhir",
    "viewer",
]

MIDDLEWARE = [
    # First and last: django-prometheus times every request (/metrics, ris/metrics.py).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A NUL byte in the path or a query parameter is a 400 for every page and endpoint.
    "ris.middleware.RejectNulBytesMiddleware",
    # CORS for /dicomweb/ and /wado only (RIS_DICOMWEB_CORS_ORIGINS; none by default).
    "imaging.cors.DicomwebCorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: axes must see the result of authentication.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "ris.urls"
WSGI_APPLICATION = "ris.wsgi.application"

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
                "django.template.context_processors.i18n",
                "ris.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ris.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the DICOM node, worker and web process share the file.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"}
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Idle timeout: the session expires after this many seconds without a request.
SESSION_COOKIE_AGE = env.int("RIS_SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# django-axes: lock an account+address after repeated failures.
AXES_FAILURE_LIMIT = env.int("RIS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("RIS_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration_auth/locked.html"
# Lock out by the same client address the audit records (ris/net.py, X-Forwarded-For aware).
AXES_CLIENT_IP_CALLABLE = "ris.net.axes_client_ip"

# Behind a reverse proxy (the README's nginx): take the client address from X-Forwarded-For,
# the right-most entry not in RIS_TRUSTED_PROXIES, and only for requests from those proxies.
RIS_TRUST_X_FORWARDED_FOR = env.bool("RIS_TRUST_X_FORWARDED_FOR", default=False)
RIS_TRUSTED_PROXIES = env.list("RIS_TRUSTED_PROXIES", default=["127.0.0.1", "::1"])
# A username longer than axes's varchar(255) is cut before it is recorded (never a 500).
AXES_USERNAME_CALLABLE = "ris.forms.axes_username"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("RIS_TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Production hardening: on whenever DEBUG is off (manage.py check --deploy is clean).
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    # Token first: an anonymous request gets 401 with ``WWW-Authenticate: Token`` (session
    # authentication has no challenge, so with it first DRF answers 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ris.permissions.RolePermission"],
    # django-filter with datetime filters that refuse values PostgreSQL cannot store (400).
    "DEFAULT_FILTER_BACKENDS": ["ris.api_filters.FilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ris.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RIS API",
    "DESCRIPTION": "Radiology Information System: patients, orders, procedures, worklist.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents its 4xx problem-details responses (ris/api_schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ris.api_schema.add_problem_responses",
    ],
}

# API: an Idempotency-Key (POST /api/v1/orders/, /patients/) and its answer are kept this long.
RIS_IDEMPOTENCY_KEY_HOURS = env.int("RIS_IDEMPOTENCY_KEY_HOURS", default=24)

# Celery: without a broker, tasks run eagerly in-process (embedded default).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or None
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"imaging.*": {"queue": "ingest"}}
CELERY_BEAT_SCHEDULE: dict = {}
# Reports: sample signed reports for RADPEER peer review (share = RIS_PEER_REVIEW_SHARE).
CELERY_BEAT_SCHEDULE["reports-peer-review-sample"] = {
    "task": "reports.peer_review_sample",
    "schedule": env.int("RIS_PEER_REVIEW_INTERVAL_SECONDS", default=6 * 3600),
}
CELERY_TIMEZONE = TIME_ZONE

# The RIS's own settings.
RIS_DEMO_MODE = env.bool("RIS_DEMO_MODE", default=DEBUG)
RIS_ISSUER_OF_PATIENT_ID = env("RIS_ISSUER_OF_PATIENT_ID", default="RIS")
RIS_MRN_PREFIX = env("RIS_MRN_PREFIX", default="P")
RIS_ACCESSION_PREFIX = env("RIS_ACCESSION_PREFIX", default="A")
RIS_UID_ROOT = env("RIS_UID_ROOT", default="")  # empty: 2.25.<UUID as integer>
RIS_DICOM_AE_TITLE = env("RIS_DICOM_AE_TITLE", default="RIS")
RIS_DICOM_PORT = env.int("RIS_DICOM_PORT", default=11112)
RIS_DICOM_BIND_ADDRESS = env("RIS_DICOM_BIND_ADDRESS", default="127.0.0.1")
RIS_STORAGE_ROOT = Path(env("RIS_STORAGE_ROOT", default=str(VAR_DIR / "storage")))
RIS_MWL_RESULT_CAP = env.int("RIS_MWL_RESULT_CAP", default=2000)
# Technologist console: how often the day board and exam status poll for changes (seconds).
RIS_CONSOLE_POLL_SECONDS = env.int("RIS_CONSOLE_POLL_SECONDS", default=5)
# Front-desk day board refresh (seconds).
RIS_BOARD_POLL_SECONDS = env.int("RIS_BOARD_POLL_SECONDS", default=10)
# Modules that contribute DICOM services to the one AE (each has contribute(ae) -> handlers).
RIS_DICOM_SERVICES = [
    "scheduling.dicom",
    "worklist.dicom_mwl",
    "worklist.dicom_mpps",
    "imaging.dicom",
    "ris.dicom_metrics",
]
# DICOM node (ris/dicom, docs/dicom.md). Timeouts in seconds.
RIS_DICOM_ACSE_TIMEOUT = env.float("RIS_DICOM_ACSE_TIMEOUT", default=30.0)
RIS_DICOM_DIMSE_TIMEOUT = env.float("RIS_DICOM_DIMSE_TIMEOUT", default=60.0)
RIS_DICOM_NETWORK_TIMEOUT = env.float("RIS_DICOM_NETWORK_TIMEOUT", default=120.0)
RIS_DICOM_MAX_ASSOCIATIONS = env.int("RIS_DICOM_MAX_ASSOCIATIONS", default=32)
# The front door (docs/dicom.md "Denial of service"): a PDU, once started, must arrive whole
# within RIS_DICOM_PDU_READ_TIMEOUT; a new connection must send its A-ASSOCIATE-RQ within
# RIS_DICOM_ASSOCIATE_TIMEOUT; connections not yet accepted are limited per source address and
# in total (one more evicts the oldest). Only accepted associations count against the maximum.
RIS_DICOM_PDU_READ_TIMEOUT = env.float("RIS_DICOM_PDU_READ_TIMEOUT", default=15.0)
RIS_DICOM_ASSOCIATE_TIMEOUT = env.float("RIS_DICOM_ASSOCIATE_TIMEOUT", default=10.0)
RIS_DICOM_MAX_PENDING_PER_ADDRESS = env.int("RIS_DICOM_MAX_PENDING_PER_ADDRESS", default=4)
RIS_DICOM_MAX_PENDING = env.int("RIS_DICOM_MAX_PENDING", default=64)
# The node's speed-only paths into pynetdicom internals (ris/dicom/patches.py); off = pynetdicom's
# own code there (the guards stay). make test runs the DICOM tests both ways.
RIS_DICOM_ACCELERATED = env.bool("RIS_DICOM_ACCELERATED", default=True)
# Maximum PDU length we advertise (P-DATA-TF variable field); longer declared PDUs abort.
RIS_DICOM_MAX_PDU = env.int("RIS_DICOM_MAX_PDU", default=65536)
# DICOM TLS (PS3.15 B.1 / BCP 195): a second listener on RIS_DICOM_TLS_PORT when a certificate
# is configured; peers must present a certificate signed by RIS_DICOM_TLS_CA.
RIS_DICOM_TLS_CERT = env("RIS_DICOM_TLS_CERT", default="")
RIS_DICOM_TLS_KEY = env("RIS_DICOM_TLS_KEY", default="")
RIS_DICOM_TLS_CA = env("RIS_DICOM_TLS_CA", default="")
RIS_DICOM_TLS_PORT = env.int("RIS_DICOM_TLS_PORT", default=2762)
RIS_DICOM_TLS_ONLY = env.bool("RIS_DICOM_TLS_ONLY", default=False)

# RIS_LOG_FORMAT=json: one JSON object per line (ris/logjson.py); plain otherwise.
RIS_LOG_FORMAT = env("RIS_LOG_FORMAT", default="plain").strip().lower()
if RIS_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"RIS_LOG_FORMAT must be plain or json, not {RIS_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ris.logjson.JSONFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": RIS_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("RIS_LOG_LEVEL", default="INFO")},
    "loggers": {
        "pynetdicom": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}

# Reports.
# Viewer launch link by Study Instance UID, e.g. OHIF "http://pacs:3000/viewer?StudyInstanceUIDs={study_instance_uid}"
# or Weasis "weasis://$dicom:rs --url http://pacs/dicom-web -r studyUID={study_instance_uid}"; empty = no link.
RIS_VIEWER_URL_TEMPLATE = env("RIS_VIEWER_URL_TEMPLATE", default="")
RIS_REPORT_LOCK_MINUTES = env.int("RIS_REPORT_LOCK_MINUTES", default=30)
RIS_READING_WORKLIST_REFRESH_SECONDS = env.int("RIS_READING_WORKLIST_REFRESH_SECONDS", default=30)
# Minutes from flagging a critical result to notifying the clinician, per ACR category.
RIS_CRITICAL_RESULT_TARGETS = {
    "1": env.int("RIS_CRITICAL_CAT1_MINUTES", default=60),
    "2": env.int("RIS_CRITICAL_CAT2_MINUTES", default=6 * 60),
    "3": env.int("RIS_CRITICAL_CAT3_MINUTES", default=3 * 24 * 60),
}
RIS_PEER_REVIEW_SHARE = env.float("RIS_PEER_REVIEW_SHARE", default=0.05)
RIS_REPORT_INSTITUTION = env("RIS_REPORT_INSTITUTION", default="Department of Radiology")
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["ReportStatusEnum"] = "reports.models.ReportStatus"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "StudyLinkMethodEnum": "imaging.models.LinkMethod",
        "NotificationMethodEnum": "reports.models.NotificationMethod",
    }
)

# Imaging ingest (docs/ingest.md). The storage root is RIS_STORAGE_ROOT above.
# Largest object accepted over C-STORE or STOW-RS (bytes); bigger ones are refused with 0xA700/413.
RIS_STORAGE_MAX_OBJECT_BYTES = env.int("RIS_STORAGE_MAX_OBJECT_BYTES", default=2 * 1024**3)
# A `received` row not indexed this long after it was last enqueued is re-enqueued by the sweeper.
RIS_INGEST_LEASE_SECONDS = env.int("RIS_INGEST_LEASE_SECONDS", default=300)
RIS_INGEST_MAX_ATTEMPTS = env.int("RIS_INGEST_MAX_ATTEMPTS", default=5)
RIS_INGEST_SWEEP_SECONDS = env.int("RIS_INGEST_SWEEP_SECONDS", default=60)
# Issuer of Accession Number (0008,0051) we assign; an object naming another issuer is not ours.
RIS_ISSUER_OF_ACCESSION_NUMBER = env("RIS_ISSUER_OF_ACCESSION_NUMBER", default="")
# IHE SWF: the modality uses the worklist's Study Instance UID; a different one goes to reconciliation.
RIS_INGEST_REQUIRE_STUDY_UID_MATCH = env.bool("RIS_INGEST_REQUIRE_STUDY_UID_MATCH", default=True)
RIS_STOW_MAX_REQUEST_BYTES = env.int("RIS_STOW_MAX_REQUEST_BYTES", default=4 * 1024**3)
# QIDO-RS: the most results one search returns (a client's limit is capped to it; more → Warning 299).
RIS_QIDO_MAX_RESULTS = env.int("RIS_QIDO_MAX_RESULTS", default=1000)
# DICOMweb: the public base URL (…/dicomweb) for RetrieveURL/BulkDataURI; empty = from the request.
RIS_DICOMWEB_BASE_URL = env("RIS_DICOMWEB_BASE_URL", default="")
# DICOMweb CORS: origins allowed to call /dicomweb/ and /wado from a browser ("*" = any); none by default.
RIS_DICOMWEB_CORS_ORIGINS = env.list("RIS_DICOMWEB_CORS_ORIGINS", default=[])
CELERY_BEAT_SCHEDULE["imaging-sweep-received"] = {
    "task": "imaging.sweep_received",
    "schedule": RIS_INGEST_SWEEP_SECONDS,
}
# Preview rendering is not ingest: keep it off the ingest queue.
CELERY_TASK_ROUTES["imaging.render_previews"] = {"queue": "default"}
# Objects indexed per transaction by the ingest task (progress survives a killed worker).
RIS_INGEST_CHUNK_SIZE = env.int("RIS_INGEST_CHUNK_SIZE", default=50)

# Department dashboards (docs/department.md): figure cache; targets in minutes per priority.
RIS_DASHBOARD_CACHE_SECONDS = env.int("RIS_DASHBOARD_CACHE_SECONDS", default=60)
RIS_BACKLOG_WINDOW_DAYS = env.int("RIS_BACKLOG_WINDOW_DAYS", default=30)
# Turnaround milestone table: refreshed when a transition commits; this periodic job is the
# backstop for anything missed. An event id is "settled" (no late commit below it can still
# come) this long after it was seen: longer than any transaction lives.
RIS_MILESTONE_SYNC_SECONDS = env.int("RIS_MILESTONE_SYNC_SECONDS", default=60)
RIS_MILESTONE_SETTLE_SECONDS = env.int("RIS_MILESTONE_SETTLE_SECONDS", default=900)
CELERY_BEAT_SCHEDULE["department-milestones-sync"] = {
    "task": "department.milestones_sync",
    "schedule": RIS_MILESTONE_SYNC_SECONDS,
}
# e.g. "STAT=60,URGENT=240,ROUTINE=1440" (report TAT completed → final, minutes) or
# "STAT.order_to_completed=60"; unset: department.selectors.DEFAULT_TAT_TARGETS.
if env("RIS_TAT_TARGETS", default=""):
    RIS_TAT_TARGETS = parse_tat_targets(env("RIS_TAT_TARGETS"))

# Health and metrics (ris/health.py, ris/metrics.py, ris/dicom_metrics.py; README "Production").
# /health/ready and /metrics answer requests from these networks (the client address as the
# audit sees it) or with "Authorization: Bearer <RIS_HEALTH_TOKEN>"; /health/live answers anyone.
RIS_HEALTH_ALLOWED_NETS = env.list("RIS_HEALTH_ALLOWED_NETS", default=["127.0.0.0/8", "::1/128"])
RIS_HEALTH_TOKEN = env("RIS_HEALTH_TOKEN", default="")
RIS_HEALTH_MIN_FREE_MB = env.int("RIS_HEALTH_MIN_FREE_MB", default=1024)
# Checks left out of readiness on this host, e.g. "dicom,hl7" for a web-only host.
RIS_HEALTH_SKIP = env.list("RIS_HEALTH_SKIP", default=[])
RIS_HEALTH_DICOM_HOST = env("RIS_HEALTH_DICOM_HOST", default="")
# The DICOM node's own /metrics (0 = off); bound to loopback unless told otherwise.
RIS_DICOM_METRICS_PORT = env.int("RIS_DICOM_METRICS_PORT", default=0)
RIS_DICOM_METRICS_BIND = env("RIS_DICOM_METRICS_BIND", default="127.0.0.1")
# Figures the apps add to /metrics (read from the database at scrape time).
RIS_METRICS_COLLECTORS = ["imaging.metrics.IngestCollector", "department.metrics.ReportTATCollector"]

# HL7 v2 interfaces (docs/integration.md): the MLLP listener, our MSH-3/MSH-4, the outbox.
RIS_HL7_BIND_ADDRESS = env("RIS_HL7_BIND_ADDRESS", default="127.0.0.1")
RIS_HL7_PORT = env.int("RIS_HL7_PORT", default=2575)
RIS_HL7_APPLICATION = env("RIS_HL7_APPLICATION", default="RIS")
RIS_HL7_FACILITY = env("RIS_HL7_FACILITY", default="RADIOLOGY")
RIS_HL7_MAX_MESSAGE_BYTES = env.int("RIS_HL7_MAX_MESSAGE_BYTES", default=4 * 1024**2)
RIS_HL7_MAX_SEGMENT_LENGTH = env.int("RIS_HL7_MAX_SEGMENT_LENGTH", default=65536)
RIS_HL7_IDLE_TIMEOUT = env.float("RIS_HL7_IDLE_TIMEOUT", default=600.0)
RIS_HL7_WORKERS = env.int("RIS_HL7_WORKERS", default=8)
RIS_HL7_OUTBOX_MAX_ATTEMPTS = env.int("RIS_HL7_OUTBOX_MAX_ATTEMPTS", default=10)
RIS_HL7_OUTBOX_BACKOFF_BASE = env.float("RIS_HL7_OUTBOX_BACKOFF_BASE", default=2.0)
RIS_HL7_OUTBOX_BACKOFF_MAX = env.float("RIS_HL7_OUTBOX_BACKOFF_MAX", default=300.0)
RIS_HL7_OUTBOX_LEASE_SECONDS = env.float("RIS_HL7_OUTBOX_LEASE_SECONDS", default=30.0)
RIS_HL7_OUTBOX_TIMEOUT = env.float("RIS_HL7_OUTBOX_TIMEOUT", default=10.0)
RIS_HL7_OUTBOX_SWEEP_SECONDS = env.float("RIS_HL7_OUTBOX_SWEEP_SECONDS", default=15.0)
CELERY_BEAT_SCHEDULE["integration-sweep-outbox"] = {
    "task": "integration.sweep",
    "schedule": RIS_HL7_OUTBOX_SWEEP_SECONDS,
}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {"HL7CharsetEnum": "integration.models.Charset", "HL7MessageTypeEnum": "integration.models.MessageType"}
)
