"""Channel layer: in-memory by default, Redis (channels-redis) when REDIS_URL is set."""

from __future__ import annotations

from parley.platform.env import env

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, which aborts channels-redis's
                # blocking BZPOPMIN (also 5 s) and tears consumers down
                # (django/channels_redis#422): give reads more time than the pop blocks.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
