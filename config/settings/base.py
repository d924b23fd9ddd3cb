"""Settings shared by every environment. Every value a deployment may change is read here, from the environment."""

import os
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Everything the site writes (SQLite database, media, indexes, manifests, models) lives under one folder.
DATA_DIR = Path(env.str("PROVENANT_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Ours, lowest layer first: each app uses only those before it (web, the pages, uses them all).
PROJECT_APPS = [
    "core",
    "provenance",
    "websignals",
    "embeddings",
    "optout",
    "training_filter",
    "generator",
    "web",
]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    *PROJECT_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",  # before anything (the CSRF check included) reads a body
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
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
                "web.context_processors.operator",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'provenant.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default is shared by the web server's threads, the ingest command and a worker process.
    # WAL lets readers go on while one writer writes; IMMEDIATE takes the write lock when a transaction begins,
    # so concurrent writers queue on the busy timeout instead of failing with "database is locked" when a
    # reader's transaction tries to upgrade to a writer's.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username before the password is even checked
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every request when the folder is missing
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("PROVENANT_MEDIA_ROOT", default=str(DATA_DIR / "media")))

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.schema.ProvenantAutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Provenant API",
    "DESCRIPTION": "Dataset provenance, artist search and opt-out for image-generation training data.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Each model's `status` is its own enum; named for the model, so a client reads ManifestBuildStatusEnum, not
    # the Status639Enum a name collision would otherwise produce.
    "ENUM_NAME_OVERRIDES": {
        # an ingest run and a signal crawl share one set of job states
        "JobStatusEnum": "provenance.models.IngestRun.Status",
        "OptOutStatusEnum": "optout.models.OptOut.Status",
        "ClaimStatusEnum": "optout.models.ClaimStatus",
        "ManifestBuildStatusEnum": "training_filter.models.ManifestBuild.Status",
        "GeneratorModelStatusEnum": "generator.models.GeneratorModel.Status",
    },
    # Separate request and response components (a read-only field is not asked for): what client generators need.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/",
}

# Celery: the embedded default broker is kombu's filesystem transport, which needs no server and works
# between processes on one machine; set CELERY_BROKER_URL=redis://... for anything bigger.
# A dead worker's units are restarted by the lease reaper (core/leases.py), not by the broker: recovery takes
# PROVENANT_LEASE_HEARTBEAT_S x PROVENANT_LEASE_MISSED_BEATS (30 s) plus at most PROVENANT_LEASE_REAP_S (30 s)
# once any worker runs, on Redis and on the filesystem broker alike. README "When a worker dies" says more.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_BROKER_DIR = DATA_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(_BROKER_DIR / "control"),  # broadcast exchanges; kombu's default is ./control
    }
else:
    # Redis hands an unacknowledged message to another worker after the visibility timeout: it must outlast the
    # longest task (an ingest shard's hard limit, 6 h 5 min), or a task still running is started a second time
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7 * 3600)
    }
# Job state lives in our own models and leases; the result backend only keeps task results.
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"db+sqlite:///{DATA_DIR / 'celery-results.sqlite3'}"
)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# where beat's tasks (the lease reaper) and unrouted tasks go: every deployment keeps a worker on it
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# acknowledged when done, and given back when the worker process dies: a message is never lost with a worker
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# one message per pool process: a long unit never waits behind another in a busy worker's buffer, and a
# killed worker holds no more messages than it was running
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3900)
# leases (core/leases.py): the holder renews every HEARTBEAT_S; MISSED_BEATS intervals without a renewal and the
# lease is dead; the reaper runs every REAP_S (beat) and when a worker starts; a unit claimed MAX_ATTEMPTS times
# without finishing fails its job; a unit sent but never claimed for RESEND_S (its message lost) is sent again
PROVENANT_LEASE_HEARTBEAT_S = env.float("PROVENANT_LEASE_HEARTBEAT_S", default=10.0)
PROVENANT_LEASE_MISSED_BEATS = env.int("PROVENANT_LEASE_MISSED_BEATS", default=3)
PROVENANT_LEASE_REAP_S = env.float("PROVENANT_LEASE_REAP_S", default=30.0)
PROVENANT_LEASE_MAX_ATTEMPTS = env.int("PROVENANT_LEASE_MAX_ATTEMPTS", default=3)
PROVENANT_LEASE_RESEND_S = env.int("PROVENANT_LEASE_RESEND_S", default=3600)
CELERY_BEAT_SCHEDULE = globals().get("CELERY_BEAT_SCHEDULE", {})
# expires: a reap still queued when the next is due is dropped, so a busy queue never fills with them
CELERY_BEAT_SCHEDULE["leases-reap"] = {
    "task": "core.tasks.leases_reap",
    "schedule": PROVENANT_LEASE_REAP_S,
    "options": {"expires": PROVENANT_LEASE_REAP_S},
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="provenant@localhost")

# Images: a file past this many pixels is refused as a decompression bomb; uploads past this many bytes too.
PROVENANT_MAX_IMAGE_PIXELS = env.int("PROVENANT_MAX_IMAGE_PIXELS", default=64_000_000)
PROVENANT_MAX_UPLOAD_BYTES = env.int("PROVENANT_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
PROVENANT_INGEST_WORKERS = env.int("PROVENANT_INGEST_WORKERS", default=2)
PROVENANT_INGEST_QUEUE = env.str("PROVENANT_INGEST_QUEUE", default="celery")  # one task per shard
# test hook: sleep before storing each batch (the SIGKILL test)
PROVENANT_INGEST_BATCH_SLEEP_S = env.float("PROVENANT_INGEST_BATCH_SLEEP_S", default=0.0)
# images that came inside a tar or a Parquet column, kept as files (by sha256) for indexing and thumbnails
PROVENANT_DATASET_IMAGES_DIR = Path(
    env.str("PROVENANT_DATASET_IMAGES_DIR", default=str(DATA_DIR / "dataset-images"))
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # open_clip logs through the root logger (how it parsed a model name...): keep the root quiet, our apps not
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL_LIBRARIES", default="WARNING")},
    "loggers": {app: {"level": env.str("LOG_LEVEL", default="INFO")} for app in (*PROJECT_APPS, "celery")},
}

# --- embeddings and search -------------------------------------------------------------------------------
# CLIP_MODEL: an open_clip model name, `provenant-lite0-minilm` (the offline default built by
# `manage.py build_default_model`), or `fake` (tests). CLIP_PRETRAINED: an open_clip pretrained tag or a local
# weights file; empty means the default model's checkpoint under PROVENANT_MODELS_DIR.
CLIP_MODEL = env.str("CLIP_MODEL", default="provenant-lite0-minilm")
CLIP_PRETRAINED = env.str("CLIP_PRETRAINED", default="")
PROVENANT_MODELS_DIR = Path(env.str("PROVENANT_MODELS_DIR", default=str(DATA_DIR / "models")))
PROVENANT_INDEX_DIR = Path(env.str("PROVENANT_INDEX_DIR", default=str(DATA_DIR / "index")))

# --- search index and cascade (embeddings/search/index.py, embeddings/search/cascade.py) -----------------------
# Exact inner product up to this many vectors, IVF beyond (exact 1M x 512 costs ~210 ms a query on 2 cores).
PROVENANT_INDEX_EXACT_MAX = env.int("PROVENANT_INDEX_EXACT_MAX", default=200_000)
PROVENANT_IVF_NPROBE = env.int("PROVENANT_IVF_NPROBE", default=32)
PROVENANT_INDEX_BATCH = env.int("PROVENANT_INDEX_BATCH", default=64)
PROVENANT_INDEX_WORKERS = env.int("PROVENANT_INDEX_WORKERS", default=2)
PROVENANT_INDEX_SHARD_SIZE = env.int("PROVENANT_INDEX_SHARD_SIZE", default=4096)
# works per Celery task when indexing through workers (index --queue, and the parts embedded in the background)
PROVENANT_INDEX_TASK_BATCH = env.int("PROVENANT_INDEX_TASK_BATCH", default=256)
PROVENANT_INDEX_ORB = env.bool("PROVENANT_INDEX_ORB", default=True)  # precompute keypoints for verification
# embed six parts of every work too (embeddings/search/parts.py): crops find their work; 7x the embedding time
PROVENANT_INDEX_PARTS = env.bool("PROVENANT_INDEX_PARTS", default=True)
# A query's pHash within this Hamming radius (of 64) of a work's is a hash match; PDQ likewise (of 256), for
# PDQ hashes of at least this quality (flat images have meaningless PDQ bits).
PROVENANT_PHASH_RADIUS = env.int("PROVENANT_PHASH_RADIUS", default=8)
PROVENANT_PDQ_RADIUS = env.int("PROVENANT_PDQ_RADIUS", default=40)
PROVENANT_PDQ_MIN_QUALITY = env.int("PROVENANT_PDQ_MIN_QUALITY", default=50)
# A work whose 16x16 grey thumbnail correlates with the query's at or above this is a hash match too (survives
# JPEG noise on thin line art that flips pHash bits; embeddings/search/thumbnails.py, figures in docs/search.md)
PROVENANT_THUMBNAIL_MIN_COSINE = env.float("PROVENANT_THUMBNAIL_MIN_COSINE", default=0.95)
PROVENANT_THUMBNAIL_MAX_HITS = env.int("PROVENANT_THUMBNAIL_MAX_HITS", default=3)  # the closest few per query
# Embedding neighbours fetched per query view, and how many of them (of the query and of each region) get ORB +
# RANSAC verification beside the keypoint votes.
PROVENANT_SEARCH_CANDIDATES = env.int("PROVENANT_SEARCH_CANDIDATES", default=50)
PROVENANT_GEOMETRIC_TOP = env.int("PROVENANT_GEOMETRIC_TOP", default=5)
# works voted for by the query's ORB descriptors (binary FAISS index of all works' keypoints), verified first,
# for the query and for its mirror image
PROVENANT_KEYPOINT_CANDIDATES = env.int("PROVENANT_KEYPOINT_CANDIDATES", default=10)
PROVENANT_GEOMETRIC_MIN_INLIERS = env.int("PROVENANT_GEOMETRIC_MIN_INLIERS", default=12)
# Two works are near-copies (one cluster; removed together by an opt-out) at or above this cosine
# (clip-retrieval deduplicates at 0.94) or within the pHash radius.
PROVENANT_NEAR_COPY_COSINE = env.float("PROVENANT_NEAR_COPY_COSINE", default=0.94)
PROVENANT_NEAR_COPY_MAX = env.int("PROVENANT_NEAR_COPY_MAX", default=100)
# At most this many members of one near-copy cluster among an image search's top results before other works get
# their turn (the rest follow): a series of near-identical drawings would otherwise fill the page.
PROVENANT_SEARCH_PER_CLUSTER = env.int("PROVENANT_SEARCH_PER_CLUSTER", default=3)
# Search inside composites (embeddings/search/regions.py): up to REGION_MAX separate pictures found in a query (a
# screenshot, a grid, a collage, a mockup) are searched by their hashes and embeddings as if each had been the
# query; the REGION_VERIFY most promising of those the hashes did not settle go through geometric verification
# too (the costly stage: ORB keypoints and RANSAC per candidate).
PROVENANT_SEARCH_REGIONS = env.bool("PROVENANT_SEARCH_REGIONS", default=True)
PROVENANT_SEARCH_REGION_MAX = env.int("PROVENANT_SEARCH_REGION_MAX", default=10)
PROVENANT_SEARCH_REGION_VERIFY = env.int("PROVENANT_SEARCH_REGION_VERIFY", default=4)
# An embedding match at or above this cosine is shown as "this is your work" beside exact, hash and geometric
# matches; below, as "might be related". Calibrated on a development draw of the copy benchmark (docs/search.md):
# of the embedding-only hits in a top 10 at cosine >= 0.8, one in nine was the work; >= 0.9 is rare and kept.
PROVENANT_SEARCH_CONFIDENT_COSINE = env.float("PROVENANT_SEARCH_CONFIDENT_COSINE", default=0.9)

# --- opt-out (accounts, claims, check API, audit) --------------------------------------------------------------
# Cache: throttling counts requests in it, so it must be shared between processes: Redis when configured,
# else a file-based cache under DATA_DIR (never locmem, which each process would count separately).
_CACHE_URL = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
if _CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }
# Throttles (core/throttles.py) read these at request time, for the API and the pages alike;
# PROVENANT_THROTTLE_ENABLED=False switches them off (test settings).
PROVENANT_THROTTLE_ENABLED = env.bool("PROVENANT_THROTTLE_ENABLED", default=True)
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["core.throttles.SettingsScopedRateThrottle"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "signup": env.str("THROTTLE_SIGNUP", default="10/hour"),
    "login": env.str("THROTTLE_LOGIN", default="20/minute"),
    "search": env.str("THROTTLE_SEARCH", default="60/minute"),
    "check": env.str("THROTTLE_CHECK", default="120/minute"),  # per API token
    "optout_create": env.str("THROTTLE_OPTOUT_CREATE", default="60/hour"),
    "claim": env.str("THROTTLE_CLAIM", default="30/hour"),  # domain and identity claims
    "verify": env.str("THROTTLE_VERIFY", default="20/hour"),  # domain verification fetches
    "token": env.str("THROTTLE_TOKEN", default="30/hour"),  # API tokens created or rotated
}
# The client address is REMOTE_ADDR. Behind reverse proxies that append to X-Forwarded-For, set
# PROVENANT_NUM_PROXIES to how many there are: the address that many entries from the right is the client's.
# Left at 0, a client cannot pick its own throttle bucket by writing the header.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("PROVENANT_NUM_PROXIES", default=0)
# Lockout (django-axes): this many wrong passwords for one username (from any address), or from one address (for
# any usernames), lock it for the cool-off: rotating addresses does not help a guesser. Counters live in Redis when
# there is one (atomic across processes), else in the database (the file cache is not atomic between processes).
AXES_FAILURE_LIMIT = env.int("PROVENANT_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = env.float("PROVENANT_LOGIN_LOCKOUT_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either locks: one name from anywhere, or one address
AXES_HANDLER = (
    "axes.handlers.cache.AxesCacheHandler"
    if CACHES["default"]["BACKEND"].endswith("RedisCache")
    else "axes.handlers.database.AxesDatabaseHandler"
)
AXES_DISABLE_ACCESS_LOG = True  # failures are counted; successful logins are not logged
AXES_CLIENT_IP_CALLABLE = "core.throttles.client_address"
AXES_LOCKOUT_CALLABLE = "core.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Request bodies (core/middleware.py): any JSON or form body up to this; multipart uploads up to
# PROVENANT_MAX_UPLOAD_BYTES; the check API up to OPTOUT_CHECK_MAX_BODY_BYTES. Larger ones answer 413 unread.
PROVENANT_MAX_BODY_BYTES = env.int("PROVENANT_MAX_BODY_BYTES", default=1024 * 1024)
OPTOUT_CHECK_MAX_BODY_BYTES = env.int("OPTOUT_CHECK_MAX_BODY_BYTES", default=8 * 1024 * 1024)
# API tokens (django-rest-knox): stored as SHA-512 digests, shown once. Tokens from login/signup expire after
# PROVENANT_LOGIN_TOKEN_HOURS; tokens an artist or operator makes for a pipeline after PROVENANT_API_TOKEN_DAYS
# (0: never). At most PROVENANT_MAX_TOKENS_PER_USER live tokens per account.
REST_KNOX = {"AUTH_HEADER_PREFIX": "Token", "TOKEN_TTL": None, "AUTO_REFRESH": False}
PROVENANT_LOGIN_TOKEN_HOURS = env.int("PROVENANT_LOGIN_TOKEN_HOURS", default=24)
PROVENANT_API_TOKEN_DAYS = env.int("PROVENANT_API_TOKEN_DAYS", default=365)
PROVENANT_MAX_TOKENS_PER_USER = env.int("PROVENANT_MAX_TOKENS_PER_USER", default=50)
# The audit log's rows are HMAC-SHA256 keyed with a secret kept outside the database: PROVENANT_AUDIT_KEY, or
# the file PROVENANT_AUDIT_KEY_FILE (made with a random key on first use unless PROVENANT_AUDIT_KEY_CREATE=False).
# Keep the key where a database administrator cannot read it, and back it up apart from the database.
PROVENANT_AUDIT_KEY = env.str("PROVENANT_AUDIT_KEY", default="")
PROVENANT_AUDIT_KEY_FILE = Path(env.str("PROVENANT_AUDIT_KEY_FILE", default=str(DATA_DIR / "audit.key")))
PROVENANT_AUDIT_KEY_CREATE = env.bool("PROVENANT_AUDIT_KEY_CREATE", default=True)
OPTOUT_CHECK_MAX_ITEMS = env.int("OPTOUT_CHECK_MAX_ITEMS", default=10_000)
# Active exact keys (URL, domain, sha256) held in each web process's memory up to this many (~150 B each),
# reloaded when the registry changes; a bigger registry is looked up in PostgreSQL per request instead.
OPTOUT_CHECK_MEMORY_KEYS = env.int("OPTOUT_CHECK_MEMORY_KEYS", default=2_000_000)
# pHash bits within which a checked image counts as an opted-out work (the index bands 64 bits into radius+1)
OPTOUT_CHECK_PHASH_RADIUS = env.int("OPTOUT_CHECK_PHASH_RADIUS", default=4)
# A near-copies opt-out takes a copy on the artist's word only where the search cascade groups it: same bytes,
# an embedding neighbour that geometric verification confirms, or a pHash this close (pHash alone at 8 bits chained
# unrelated flat drawings). The nearest AUTO_MAX copies go with the work; up to REVIEW_MAX more wait for an
# operator as a request of their own.
OPTOUT_NEAR_COPY_PHASH_RADIUS = env.int("OPTOUT_NEAR_COPY_PHASH_RADIUS", default=4)
OPTOUT_NEAR_COPY_AUTO_MAX = env.int("OPTOUT_NEAR_COPY_AUTO_MAX", default=20)
OPTOUT_NEAR_COPY_REVIEW_MAX = env.int("OPTOUT_NEAR_COPY_REVIEW_MAX", default=200)
OPTOUT_MAX_WORKS_PER_REQUEST = env.int("OPTOUT_MAX_WORKS_PER_REQUEST", default=10_000)
# domain verification: https://DOMAIN/.well-known/provenant-verify.txt or a DNS TXT record
OPTOUT_VERIFY_SCHEME = env.str("OPTOUT_VERIFY_SCHEME", default="https")
OPTOUT_VERIFY_TIMEOUT_S = env.float("OPTOUT_VERIFY_TIMEOUT_S", default=5.0)  # total, per fetch and DNS query

# --- fetching from other people's servers (core/fetch.py) and the web's own opt-out signals (websignals) -------
# Identifies us to site operators: a page that says who crawls, why, and how to see what we read about a site.
PROVENANT_OPERATOR_URL = env.str("PROVENANT_OPERATOR_URL", default="https://provenant.example/signals/")
FETCH_USER_AGENT = env.str("FETCH_USER_AGENT", default=f"Provenant/0.1.0 (+{PROVENANT_OPERATOR_URL})")
FETCH_DEADLINE_S = env.float("FETCH_DEADLINE_S", default=10.0)  # total: resolve, connect, redirects, body
FETCH_MAX_BYTES = env.int("FETCH_MAX_BYTES", default=512 * 1024)  # RFC 9309 asks parsers to read >= 500 KiB
FETCH_MAX_REDIRECTS = env.int("FETCH_MAX_REDIRECTS", default=3)  # and only on the same host
FETCH_CONCURRENCY = env.int("FETCH_CONCURRENCY", default=64)  # requests in flight per crawling process
FETCH_HOST_INTERVAL_S = env.float(
    "FETCH_HOST_INTERVAL_S", default=1.0
)  # at most one request a second per host
FETCH_RESOLVER = "core.fetch.system_resolve"
# Never set in production: tests serving on loopback allow 127.0.0.0/8 and map the default ports to theirs.
FETCH_EXTRA_ALLOWED_NETWORKS: list[str] = []
FETCH_PORT_MAP: dict[str, int] = {}
# robots.txt groups that count as an AI-training opt-out when they disallow a path (a `*` group does not: it
# speaks to every crawler, search engines included, and says nothing about training). Documented in
# docs/signals.md; override with a comma-separated list.
WEBSIGNALS_AI_AGENTS = env.list(
    "WEBSIGNALS_AI_AGENTS",
    default=[
        "CCBot", "GPTBot", "Google-Extended", "anthropic-ai", "ClaudeBot", "Claude-Web", "Bytespider",
        "Applebot-Extended", "meta-externalagent", "FacebookBot", "cohere-ai", "Diffbot", "omgili",
        "PerplexityBot", "Amazonbot", "img2dataset", "AI2Bot", "Ai2Bot-Dolma", "ImagesiftBot", "Timpibot",
    ],
)  # fmt: skip
# our own agent tokens, matched against ai.txt groups (else the `*` group applies)
WEBSIGNALS_OWN_AGENTS = env.list("WEBSIGNALS_OWN_AGENTS", default=["provenant"])
WEBSIGNALS_MAX_AGE_S = env.int("WEBSIGNALS_MAX_AGE_S", default=7 * 24 * 3600)  # refetch a site after this
WEBSIGNALS_BATCH_HOSTS = env.int("WEBSIGNALS_BATCH_HOSTS", default=500)  # hosts per Celery task
# hosts crawled at once per task (each mostly waits for its own turn); a dead worker's batch: PROVENANT_LEASE_*
WEBSIGNALS_HOSTS_IN_FLIGHT = env.int("WEBSIGNALS_HOSTS_IN_FLIGHT", default=256)

# --- training_filter: manifest builds ------------------------------------------------------------------------
# Published manifests live in MANIFEST_DIR/build-NNNNNN; work files (registry snapshot, shard outputs) in .work/.
MANIFEST_DIR = Path(env.str("PROVENANT_MANIFEST_DIR", default=str(DATA_DIR / "manifests")))
MANIFEST_SHARD_ROWS = env.int(
    "PROVENANT_MANIFEST_SHARD_ROWS", default=1_000_000
)  # rows per Celery shard task
MANIFEST_BATCH_ROWS = env.int("PROVENANT_MANIFEST_BATCH_ROWS", default=65_536)  # rows in memory at a time
MANIFEST_PHASH_RADIUS = env.int("PROVENANT_MANIFEST_PHASH_RADIUS", default=4)  # Hamming bits, of 64
MANIFEST_REGISTRY_SOURCE = env.str(
    "PROVENANT_MANIFEST_REGISTRY_SOURCE", default="optout.registry.registry_rows"
)
MANIFEST_SIGNAL_EVALUATOR = env.str(
    "PROVENANT_MANIFEST_SIGNAL_EVALUATOR", default="optout.rules.evaluate_asset_signals"
)
MANIFEST_CELERY_QUEUE = env.str("PROVENANT_MANIFEST_QUEUE", default="celery")
# Folders (or object-store prefixes such as s3://bucket/manifests) under which an input manifest named through the API
# must lie: an operator account is not a shell account, so it may not make the server read whatever its files or
# credentials reach (the CLI, run from a shell, reads any path it is given).
MANIFEST_INPUT_ROOTS = env.list("PROVENANT_MANIFEST_INPUT_ROOTS", default=[str(DATA_DIR / "inputs")])
# shards `manage.py build_manifest` filters at once, in threads of one process; 0 = one per CPU (Celery: a task a shard)
MANIFEST_CLI_THREADS = env.int("PROVENANT_MANIFEST_CLI_THREADS", default=0)
MANIFEST_SHARD_SLEEP_S = env.float("PROVENANT_MANIFEST_SHARD_SLEEP_S", default=0.0)  # test hook: slow shards
MANIFEST_FINALISE_SLEEP_S = env.float("PROVENANT_MANIFEST_FINALISE_SLEEP_S", default=0.0)  # test hook
CELERY_BEAT_SCHEDULE = globals().get("CELERY_BEAT_SCHEDULE", {})
CELERY_BEAT_SCHEDULE["manifest-rebuild-when-optouts-change"] = {
    "task": "training_filter.tasks.manifest_builds_refresh",
    "schedule": env.float("PROVENANT_MANIFEST_REFRESH_S", default=15 * 60),
}

# --- embeddings: encoder runtime -------------------------------------------------------------------------
PROVENANT_TORCH_THREADS = env.int("PROVENANT_TORCH_THREADS", default=2)  # intra-op threads of encoding
PROVENANT_ENCODE_BATCH = env.int("PROVENANT_ENCODE_BATCH", default=64)  # images or captions per forward pass
# "onnx": the image tower runs in ONNX Runtime (exported once, checked against PyTorch on a probe, PyTorch where
# either fails; a batch of query views in two thirds of the time on CPU); "torch": PyTorch's eager forward.
PROVENANT_IMAGE_RUNTIME = env.str("PROVENANT_IMAGE_RUNTIME", default="onnx")
# libgomp (PyTorch's, FAISS's and OpenBLAS's OpenMP) keeps a finished parallel region's threads spinning for about a
# millisecond by default. An image search runs hundreds of short regions, so a spinning thread held most of the core
# its second thread needed (cpu/wall 1.76 with only one core's work); 10,000 spins cost no time between regions.
# Read when libgomp loads: here, before anything imports PyTorch or FAISS.
os.environ.setdefault("GOMP_SPINCOUNT", env.str("GOMP_SPINCOUNT", default="10000"))

# --- generator (defaults and meanings in generator/conf.py) ---------------------------------------------
GENERATOR_DIR = Path(env.str("PROVENANT_GENERATOR_DIR", default=str(DATA_DIR / "generator")))
# auto: the default model's text embedding when it is built, else hashed keywords | text | keywords | none
GENERATOR_CONDITIONING = env.str("PROVENANT_GENERATOR_CONDITIONING", default="auto")
# classifier-free guidance at generation; provisional until benchmarks/generation_quality.py chooses it (docs/generator.md)
GENERATOR_GUIDANCE = env.float("PROVENANT_GENERATOR_GUIDANCE", default=5.0)
GENERATOR_RESOLUTION = env.int("PROVENANT_GENERATOR_RESOLUTION", default=32)
GENERATOR_STEPS = env.int("PROVENANT_GENERATOR_STEPS", default=2000)
GENERATOR_BATCH_SIZE = env.int("PROVENANT_GENERATOR_BATCH_SIZE", default=32)
GENERATOR_CHANNELS = tuple(env.list("PROVENANT_GENERATOR_CHANNELS", cast=int, default=[32, 48, 64]))
GENERATOR_DEVICE = env.str(
    "PROVENANT_GENERATOR_DEVICE", default="cpu"
)  # cuda: train on a GPU (docs/generator.md)
GENERATOR_THREADS = env.int("PROVENANT_GENERATOR_THREADS", default=2)
# The attribution feature recipe a new model is trained with (a trained model keeps its own; the ledger says which).
# Unset (None), each takes its default from generator.ml.features.FeatureConfig through generator.conf.
GENERATOR_FEATURE_TIMESTEPS = env.int("PROVENANT_GENERATOR_FEATURE_TIMESTEPS", default=None)
GENERATOR_FEATURE_NOISE_DRAWS = env.int("PROVENANT_GENERATOR_FEATURE_NOISE_DRAWS", default=None)
GENERATOR_FEATURE_NORMALISE = env.bool("PROVENANT_GENERATOR_FEATURE_NORMALISE", default=None)
GENERATOR_FEATURE_OUTPUT = env.str("PROVENANT_GENERATOR_FEATURE_OUTPUT", default=None)
GENERATOR_LAMBDA_REL = env.float("PROVENANT_GENERATOR_LAMBDA_REL", default=None)  # ridge lambda, relative
