#!/usr/bin/env bash
# Validates docker/compose.yaml with `docker-compose config` (no Docker engine needed): the
# default services and the "gpu" profile, with the variables of docker/.env.example. Installs
# Debian's docker-compose with apt-get when missing and running as root; otherwise fails
# (never skips), naming what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: docker-compose"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  compose=(docker-compose)
else
  echo "error: validating docker/compose.yaml needs docker-compose (or the docker compose plugin)" >&2
  echo "       install it, e.g.: sudo apt-get install docker-compose" >&2
  exit 1
fi
for profile in "" gpu; do
  args=(--env-file docker/.env.example -f docker/compose.yaml)
  [ -n "$profile" ] && args+=(--profile "$profile")
  "${compose[@]}" "${args[@]}" config -q
  echo "docker/compose.yaml${profile:+ with profile $profile}: valid"
done
# The required secrets must stay required: without them the configuration is refused.
if env -u DJANGO_SECRET_KEY -u POSTGRES_PASSWORD "${compose[@]}" --env-file /dev/null \
    -f docker/compose.yaml config -q >/dev/null 2>&1; then
  echo "error: docker/compose.yaml accepted a configuration without DJANGO_SECRET_KEY" >&2
  exit 1
fi
