#!/usr/bin/env bash
# A CI job that rolls one build out through rolloutdesk: register, report checks, start, then
# route the traffic rolloutdesk says until the release completes (100 %) or is rolled back (0 %).
# Needs bash, curl and python3 (to read JSON). Replace set_traffic and smoke_check with yours.
set -euo pipefail

: "${RD:?set RD to the API root of rolloutdesk, e.g. http://127.0.0.1:8000/api/v1}"
: "${TOKEN:?set TOKEN to an API token key (a CI secret)}"
: "${VERSION:?set VERSION to the version this pipeline built}"
SERVICE=${SERVICE:-ai-orchestra}
ENVIRONMENT=${ENVIRONMENT:-production}
PLAN=${PLAN:-}                      # a plan slug; empty: the service's default plan
GIT_SHA=${GIT_SHA:-}
PASSED_CHECKS=${PASSED_CHECKS-tests} # keys of the automated checklist items the jobs before passed
CI_RUN_URL=${CI_RUN_URL:-}          # evidence link for those checks
POLL_SECONDS=${POLL_SECONDS:-60}    # how long to wait while the gate is red

# --- your deploy hooks ----------------------------------------------------------------------
set_traffic() { # set_traffic PERCENT: route PERCENT % of the traffic to $VERSION
    echo "route $1% to $VERSION"
}
smoke_check() { # smoke_check PERCENT: your own health checks; non-zero rolls the release back
    true
}

# --- talking to rolloutdesk -----------------------------------------------------------------
api() { # api METHOD PATH [JSON]: sets $code (the HTTP status) and $body (the answer)
    local out
    out=$(curl -sS -X "$1" "$RD$2" -H "Authorization: Token $TOKEN" \
        -H "Content-Type: application/json" ${3:+--data "$3"} -w '\n%{http_code}') ||
        { echo "rolloutdesk did not answer $1 $RD$2" >&2; exit 1; }
    code=${out##*$'\n'}
    body=${out%$'\n'*}
}
field() { # field NAME: one field of the JSON in $body (true/false for booleans)
    python3 -c 'import json, sys
v = json.loads(sys.argv[1]).get(sys.argv[2])
print(json.dumps(v) if isinstance(v, bool) or v is None else v)' "$body" "$1"
}
json_object() { # json_object KEY VALUE ...: a JSON object of the pairs with a value
    python3 -c 'import json, sys
a = sys.argv[1:]
print(json.dumps({k: v for k, v in zip(a[::2], a[1::2]) if v}))' "$@"
}
explain() { # print the detail, the field errors and every blocker of the answer in $body
    python3 -c 'import json, sys
try:
    answer = json.loads(sys.argv[1])
except ValueError:
    sys.exit(print(sys.argv[1][:2000]))
for key, value in answer.items() if isinstance(answer, dict) else [("answer", answer)]:
    if key == "blockers":
        for b in value:
            print("  blocked by %s: %s" % (b["kind"], b["detail"]))
    elif key != "known_keys":
        print("  %s: %s" % (key, value if isinstance(value, str) else json.dumps(value)))' "$body"
}
fail() { # fail MESSAGE: say what failed and why, then stop the job
    echo "rolloutdesk: $1 (HTTP $code)" >&2
    explain >&2
    exit 1
}

# 1. Register the release. Safe to repeat: a re-run gets the same release back (200, not 201).
api POST /releases/ "$(json_object service "$SERVICE" environment "$ENVIRONMENT" \
    version "$VERSION" plan "$PLAN" commit_sha "$GIT_SHA")"
[[ $code == 200 || $code == 201 ]] || fail "could not register $SERVICE $VERSION"
id=$(field id)
status=$(field status)
echo "release $id: $SERVICE $VERSION to $ENVIRONMENT, $status"

# 2. Report the automated checklist items the earlier jobs passed (a report may be repeated).
for key in $PASSED_CHECKS; do
    api POST "/releases/$id/checks/" "$(json_object key "$key" passed true url "$CI_RUN_URL")"
    [[ $code == 200 ]] || fail "could not report check '$key'"
    echo "reported $key: passed"
done

# 3. Start it, unless an earlier run did. A red start gate answers 409 with its blockers.
if [[ $status == planned ]]; then
    api POST "/releases/$id/start/" "$(json_object reason "pipeline ${CI_PIPELINE_ID:-}")"
    [[ $code == 200 ]] || fail "release $id may not start"
    echo "started at stage $(field stage), $(field traffic_percentage)%"
fi

# 4. Stage by stage: route the traffic rolloutdesk says, check it, advance when the gate is green.
while :; do
    api GET "/releases/$id/traffic/"
    [[ $code == 200 ]] || fail "could not read the traffic of release $id"
    status=$(field status)
    percentage=$(field percentage)
    case $status in
        completed)
            set_traffic 100
            echo "release $id completed: $VERSION serves 100%"
            exit 0
            ;;
        rolled_back | aborted)
            set_traffic 0
            echo "release $id was ${status/_/ }: $VERSION serves 0%" >&2
            exit 1
            ;;
        planned)
            echo "release $id is planned: it was not started" >&2
            exit 1
            ;;
    esac
    set_traffic "$percentage"

    if ! smoke_check "$percentage"; then
        api POST "/releases/$id/rollback/" '{"reason": "smoke check failed in CI"}'
        set_traffic 0
        [[ $code == 200 ]] || explain >&2 # 409: it finished or was rolled back meanwhile
        echo "smoke check failed at $percentage%: release $id rolled back" >&2
        exit 1
    fi

    api GET "/releases/$id/gate/"
    [[ $code == 200 ]] || fail "could not read the gate of release $id"
    if [[ $(field can_advance) != true ]]; then
        echo "waiting at $percentage% ($status):"
        explain | grep 'blocked by' || true
        sleep "$POLL_SECONDS"
        continue
    fi

    # Green: advance. 409 means the gate turned red, or someone (a person, the auto-advance tick)
    # moved the release first; either way the next round reads where it is now.
    # from_stage: a retried or repeated request never advances a second time (409 instead).
    api POST "/releases/$id/advance/" \
        "$(json_object reason 'gate green; checks passed in CI' from_stage "$(field stage)")"
    case $code in
        200) echo "advanced to stage $(field stage), $(field traffic_percentage)%" ;;
        409) echo "not advanced: $(field detail)" ;;
        *) fail "could not advance release $id" ;;
    esac
done
