#!/usr/bin/env bash
# Static file throughput: nubo's gateway vs nginx serving the same small file,
# measured in the same run with the same wrk load. Prints both and the ratio.
# Target: nubo >= 0.8x nginx.
source "$(dirname "$0")/lib.sh"
require_wrk

site=$BENCH_TMP/site
mkdir -p "$site"
printf '<!doctype html><title>hello</title><p>Hello from a static file.</p>\n' >"$site/index.html"

start_nubo ${NUBO_ARGS:-}
"$NUBO" deploy "$site" --app bench --json >/dev/null

against_nginx "static file" 0.8x "$NUBO_DATA_URL/bench/index.html" /index.html "root $site; etag on;"
