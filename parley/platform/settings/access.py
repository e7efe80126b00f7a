"""Access to calls from web pages: call tokens, rate limits, the cache they share.

See docs/widget.md. The cache is Redis when REDIS_URL is set (shared by every web process, so
rate limits and spent call tokens hold across them), else per-process memory.
"""

from __future__ import annotations

from parley.platform.env import env

_REDIS_URL = env.str("REDIS_URL", default="")

if _REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _REDIS_URL,
            "KEY_PREFIX": env.str("PARLEY_CACHE_PREFIX", default="parley"),
        }
    }
    # django-ratelimit's list of supported backends predates Django's own RedisCache (4.0),
    # whose incr() is Redis INCRBY: atomic across processes, which is all the counters need.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # django-ratelimit warns that per-process memory does not share counters across
    # processes: true, and fine for the single-process embedded default.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

#: How long a call token may wait before its WebSocket connects (s).
PARLEY_CALL_TOKEN_TTL_S = env.int("PARLEY_CALL_TOKEN_TTL_S", default=60)
#: Call tokens a publishable key may obtain, and a client address may obtain (django-ratelimit
#: rates: "count/period", period s, m, h or d).
PARLEY_CALL_TOKEN_RATE_PER_KEY = env.str("PARLEY_CALL_TOKEN_RATE_PER_KEY", default="120/m")
PARLEY_CALL_TOKEN_RATE_PER_ADDRESS = env.str("PARLEY_CALL_TOKEN_RATE_PER_ADDRESS", default="20/m")
#: Header holding the client address when Parley runs behind a reverse proxy you trust (e.g.
#: "HTTP_X_FORWARDED_FOR"; its first address is used). Empty: REMOTE_ADDR.
PARLEY_CLIENT_ADDRESS_HEADER = env.str("PARLEY_CLIENT_ADDRESS_HEADER", default="")
