#!/usr/bin/env bash
# Runs the amqplib (Node) scenario tests against AMQP_URL
# (default amqp://guest:guest@127.0.0.1:5672/%2F).
# Installs the locked dependencies first when they are missing or stale
# (npm ci; idempotent, nothing is downloaded when they are up to date).
set -euo pipefail
cd "$(dirname "$0")"
if ! node -e '
  const want = require("./package-lock.json").packages["node_modules/amqplib"].version;
  process.exit(require("./node_modules/amqplib/package.json").version === want ? 0 : 1);
' 2>/dev/null; then
  npm ci --no-audit --no-fund --silent
fi
exec node --test --test-timeout=30000 ./*.test.js
