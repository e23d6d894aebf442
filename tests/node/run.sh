#!/usr/bin/env bash
# Runs the amqplib (Node) scenario tests against AMQP_URL.
# Installs the locked dependencies first if they are missing (idempotent).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/amqplib/package.json ]; then
  npm ci --no-audit --no-fund --silent
fi
exec node --test --test-timeout=30000 ./*.test.js
