"""Settings for the RIS, read from the environment (django-environ).

One settings module serves development, tests and production; the environment decides.
Defaults are the zero-setup embedded mode: SQLite under var/, Celery eager, DEBUG on.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env(
    "DJANGO_SECRET_KEY",
    default="django-insecure-dev-only-key-change-me-0123456789abcdefghijklmnop",
)
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
    "ris",
    "audit",
    "registration",
    "scheduling",
    "worklist",
    "imaging",
    "reports",
    "department",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ris.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
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
}

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
# Modules that contribute DICOM services to the one AE (each has contribute(ae) -> handlers).
RIS_DICOM_SERVICES = ["scheduling.dicom", "worklist.dicom_mwl", "worklist.dicom_mpps", "imaging.dicom"]
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
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
RIS_PEER_REVIEW_WINDOW_DAYS = env.int("RIS_PEER_REVIEW_WINDOW_DAYS", default=1)
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
