#!/usr/bin/env bash
# The web console: what its first load weighs (HTML, JS and CSS as a
# browser fetches them, gzipped), and how long the apps page takes to show
# 500 apps in headless chromium after a reload, against the same page with
# one app (same run).
# Targets: first load under 200 KB compressed; 500 apps interactive in under 1 s.
source "$(dirname "$0")/lib.sh"
APPS=${APPS:-500}
command -v chromium >/dev/null || { echo "bench: chromium missing (scripts/setup installs it)" >&2; exit 1; }

start_nubo ${NUBO_ARGS:-}
size=0
for f in / /console/app.js /console/app.css; do
  n=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$NUBO_SERVER$f")
  printf '  %-18s %7d bytes\n' "$f" "$n"
  size=$((size + n))
done
echo "first load: $size bytes compressed (target < 200 KB: $([[ $size -lt 204800 ]] && echo within || echo OVER))"

site=$BENCH_TMP/site
mkdir -p "$site"
echo '<h1>hi</h1>' >"$site/index.html"
tti() {  # tti N: ms until the apps page lists N apps
  CONTROL_URL=$NUBO_SERVER DATA_URL=$NUBO_DATA_URL ADMIN_TOKEN=$NUBO_TOKEN APPS_COUNT=$1 \
    timeout 120 node "$ROOT/console/test/console.test.mjs" many-apps-load-fast | sed -n 's/.* in \([0-9]*\) ms/\1/p'
}
"$NUBO" deploy "$site" --app app-0 --json >/dev/null
one=$(tti 1)
for i in $(seq 1 $((APPS - 1))); do "$NUBO" deploy "$site" --app "app-$i" --json >/dev/null; done
many=$(tti "$APPS")
echo "apps page interactive: $APPS apps ${many} ms, 1 app ${one} ms (reference); ratio $(python3 -c "print(f'{$many / max($one, 1):.1f}')")x"
echo "target: $APPS apps under 1000 ms: $([[ $many -lt 1000 ]] && echo within || echo OVER)"
