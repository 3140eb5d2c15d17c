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

start_nginx "root $site; etag on;"
nginx_url="http://127.0.0.1:$NGINX_PORT/index.html"
wait_for "$nginx_url"
pair=$(measure_pair "$NUBO_DATA_URL/bench/index.html" "$nginx_url") || exit 1
report_pair "static file" nginx 0.8x "$pair"
