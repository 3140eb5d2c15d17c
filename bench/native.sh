#!/usr/bin/env bash
# A native (C++, nubo SDK) hello world through nubo vs nginx answering the
# same JSON with `return 200`, measured in the same run with the same wrk load.
# Target: nubo >= 0.85x nginx.
source "$(dirname "$0")/lib.sh"
require_wrk

app=$BENCH_TMP/native
mkdir -p "$app"
echo '{"runtime": "native"}' >"$app/nubo.json"
cat >"$app/main.cc" <<'CC'
#include "nubo.h"
nubo::Response handle(const nubo::Request&) { return nubo::Response::json("{\"hello\":\"world\"}"); }
CC
start_nubo ${NUBO_ARGS:-}
"$NUBO" deploy "$app" --app native --json >/dev/null

against_nginx "native C++ hello world" 0.85x "$NUBO_DATA_URL/native/" / \
  'location / { default_type application/json; return 200 "{\"hello\":\"world\"}"; }'
