#!/bin/sh
# A runner run from a pipeline that has only sh, curl and sed: start it (async), then
# follow its events, resuming after any drop with Last-Event-ID; exit with its code.
#
#   RUNNER_URL=https://runner:8443 RUNNER_TOKEN=rnr_… [RUNNER_CACERT=ca.pem] \
#     sh curl.sh vm/create 'rg=web&vmname=web-1&ssh_key=ssh-ed25519%20AAAA…'
#
# Exit codes as `runner call`: the run's own; 124 timed out; 130 cancelled;
# 75 interrupted; 69 the server could not be reached; 64 refused (the problem is printed).
set -eu
: "${RUNNER_URL:?set RUNNER_URL}"
job=$1
query=${2:-}
tries=${RUNNER_TRIES:-30}
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
set -- -sS -H "Authorization: Bearer ${RUNNER_TOKEN:-}"
[ -n "${RUNNER_CACERT:-}" ] && set -- "$@" --cacert "$RUNNER_CACERT"

# One key for this start: curl's own retries of the POST start one run, never two.
key=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || date +%s%N)
code=$(curl "$@" --retry 10 --retry-all-errors --retry-max-time 120 -o "$state/start" \
  -w '%{http_code}' -X POST -H "Prefer: respond-async" -H "Idempotency-Key: $key" \
  "$RUNNER_URL/$job?$query") || { echo "curl.sh: $RUNNER_URL did not answer" >&2; exit 69; }
case $code in
  2??) ;;
  *) cat "$state/start" >&2; echo >&2; exit 64 ;;
esac
id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$state/start")
echo "curl.sh: run $id: $RUNNER_URL/_runs/$id" >&2

echo 0 > "$state/last"
failures=0
until [ -s "$state/done" ]; do
  before=$(cat "$state/last")
  curl "$@" -N --no-buffer -H "Accept: text/event-stream" -H "Last-Event-ID: $before" \
    "$RUNNER_URL/_runs/$id/events" 2>/dev/null | while IFS= read -r line; do
    case $line in
      "id: "*) seq=${line#id: } ;;
      "event: "*) kind=${line#event: } ;;
      "data: "*)
        data=${line#data: }
        case $kind in
          output) printf '%s\n' "$data" ;;
          error) printf '%s\n' "$data" >&2 ;;
          done) printf '%s\n' "$data" > "$state/done" ;;
        esac
        echo "$seq" > "$state/last" ;;
    esac
  done || true
  [ -s "$state/done" ] && break
  if [ "$(cat "$state/last")" = "$before" ]; then failures=$((failures + 1)); else failures=0; fi
  if [ "$failures" -ge "$tries" ]; then
    echo "curl.sh: lost run $id after $tries tries" >&2
    exit 69
  fi
  sleep 1
done

done=$(cat "$state/done")
echo "curl.sh: $done" >&2
case $done in
  *'"state": "succeeded"'*) exit 0 ;;
  *'"state": "timed_out"'*) exit 124 ;;
  *'"state": "cancelled"'*) exit 130 ;;
  *'"state": "interrupted"'*) exit 75 ;;
esac
exit "$(printf '%s' "$done" | sed -n 's/.*"exit_code": *\([0-9]*\).*/\1/p' | grep . || echo 1)"
