#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer for the test suite; starts them when this machine has
# them installed but stopped. Exits non-zero (tests must fail, not skip) when one is missing.
set -uo pipefail
pg_host=127.0.0.1; pg_port=5432; redis_port=6379

pg_up() { python3 - "$pg_host" "$pg_port" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}
redis_up() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! redis_up 2>/dev/null; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
      --dir /tmp --logfile /tmp/parley-redis.log || true
    for _ in $(seq 1 30); do redis_up 2>/dev/null && break; sleep 1; done
  fi
fi
ok=0
pg_up || { echo "error: PostgreSQL is not reachable on $pg_host:$pg_port (tests need it)" >&2; ok=1; }
redis_up 2>/dev/null || { echo "error: Redis is not reachable on 127.0.0.1:$redis_port (tests need it)" >&2; ok=1; }
exit $ok
