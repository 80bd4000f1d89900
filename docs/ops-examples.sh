#!/usr/bin/env bash
# Everyday questions to a liege emperor, answered with curl and jq. Each block works as written; run the whole
# file to try them all against a live emperor:
#
#   docs/ops-examples.sh [API_URL] [VASSAL]        (defaults: http://127.0.0.1:9191 and the first vassal)
#
# The token for control calls is read from the file the emperor names in /api/emperor (token_file); set
# LIEGE_TOKEN to use another one.
set -euo pipefail
API=${1:-http://127.0.0.1:9191}
VASSAL=${2:-$(curl -fsS "$API/api/vassals" | jq -r '.vassals[0].name // empty')}
[ -n "$VASSAL" ] || { echo "no vassal is deployed at $API" >&2; exit 1; }
TOKEN=${LIEGE_TOKEN:-$(cat "$(curl -fsS "$API/api/emperor" | jq -r .token_file)")}

echo "## The emperor: version, uptime, vassals by state, total req/s"
curl -fsS "$API/api/emperor" | jq '{version, uptime_s, vassals, rps: .totals.rps}'

echo "## Every vassal: name, state, req/s now, p99 latency (ms), 5xx count, memory (MiB)"
curl -fsS "$API/api/vassals" | jq -r '.vassals[]
  | [.name, .state, (.rps["1s"] // "-"), (.latency_ms.p99 // "-"), .status["5xx"],
     ((.rss_bytes // 0) / 1048576 | floor)] | @tsv'

echo "## Vassals that are not running, with their last error"
curl -fsS "$API/api/vassals" | jq -r '.vassals[] | select(.state != "running") | "\(.name): \(.state): \(.last_error // "-")"'

echo "## $VASSAL: error rate over its life"
curl -fsS "$API/api/vassals/$VASSAL" | jq -r '"\(.status["5xx"]) errors in \(.requests) requests"'

echo "## $VASSAL: busiest workers"
curl -fsS "$API/api/vassals/$VASSAL" | jq -r '.workers | sort_by(-.requests)[] | "worker \(.id) pid \(.pid) \(.status) \(.requests) req, last respawn: \(.respawn_cause // "none")"'

echo "## $VASSAL: requests and errors in the last minute (from the per-second history)"
curl -fsS "$API/api/vassals/$VASSAL/history?seconds=60" \
  | jq '{requests: ([.points[].requests] | add // 0), errors: ([.points[].errors] | add // 0), seconds: (.points | length)}'

echo "## $VASSAL: the last 5 log lines mentioning 'worker'"
curl -fsS "$API/api/vassals/$VASSAL/logs?tail=5&grep=worker" | jq -r '.lines[].text'

echo "## $VASSAL: lifecycle events, newest last"
curl -fsS "$API/api/vassals/$VASSAL/events" | jq -r '.events[-5:][] | "\(.time | floor | todate) \(.kind): \(.message)"'

echo "## Prometheus: request counters of $VASSAL"
curl -fsS "$API/metrics" | grep "^liege_requests_total{vassal=\"$VASSAL\""

echo "## Live log lines for 2 seconds"
timeout 2 curl -fsSN "$API/api/vassals/$VASSAL/logs/stream" || true

echo "## Graceful reload, then chain reload (workers one at a time)"
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" "$API/api/vassals/$VASSAL/reload" | jq -c .
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" "$API/api/vassals/$VASSAL/chain-reload" | jq -c .
