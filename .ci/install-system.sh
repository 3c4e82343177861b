#!/usr/bin/env bash
# System packages the suite needs: a CJK font (posters, screenshots), Chromium (browser tests),
# wrk (benchmarks), nginx (tests/scale/test_two_servers_nginx.py runs its own on loopback ports),
# Node packages (Prism, Twilio's API mock). Idempotent; quiet when present.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need_apt+=(fonts-noto-cjk)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  # No service starts during the install (nginx would take port 80): the tests start their own.
  policy_rc=/usr/sbin/policy-rc.d
  if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod 0755 "$policy_rc"
    trap 'rm -f "$policy_rc"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f package.json ] && [ ! -x node_modules/.bin/prism ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# PostgreSQL and Redis run on CI's machine before the session; start them if they stopped.
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
