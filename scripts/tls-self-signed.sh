#!/usr/bin/env bash
# A self-signed TLS certificate for running docker/compose.yaml locally: writes
# docker/certs/tls.crt and tls.key (valid 365 days) for the given host names (default
# localhost). Browsers warn about it; production mounts real certificates instead
# (PARLEY_TLS_DIR, docs/deployment.md).
#
#   bash scripts/tls-self-signed.sh [HOST ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null 2>&1 || { echo "error: openssl is needed (apt-get install openssl)" >&2; exit 1; }
hosts=("$@"); [ ${#hosts[@]} -eq 0 ] && hosts=(localhost)
san="IP:127.0.0.1"
for h in "${hosts[@]}"; do san="$san,DNS:$h"; done
mkdir -p docker/certs
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 \
  -subj "/CN=${hosts[0]}" -addext "subjectAltName=$san" \
  -keyout docker/certs/tls.key -out docker/certs/tls.crt 2>/dev/null
chmod 600 docker/certs/tls.key
echo "wrote docker/certs/tls.crt and tls.key for ${hosts[*]} (self-signed, 365 days)"
