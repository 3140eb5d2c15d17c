#!/usr/bin/env bash
# Builds: a TypeScript function with dependencies, deployed with an empty
# build cache (cold: npm ci + esbuild) and again after a one-line change
# (cached: package-lock.json unchanged, npm's package cache warm).
# Reference in the same run: `npm ci` of the same project run directly on
# this machine, which every build without a dependency cache pays.
source "$(dirname "$0")/lib.sh"
DEP_FILES=${DEP_FILES:-2000}
command -v npm >/dev/null && command -v esbuild >/dev/null || { echo "bench: npm/esbuild missing (scripts/setup)" >&2; exit 1; }

proj=$BENCH_TMP/app
mkdir -p "$proj/vendor/lib"
python3 - "$proj/vendor/lib" "$DEP_FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
names = []
for i in range(n):
    d = os.path.join(root, "src", f"m{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.js"), "w") as f:
        f.write(f"module.exports = {i};\n" + "// padding\n" * 20)
with open(os.path.join(root, "index.js"), "w") as f:
    f.write("module.exports = (n) => `hello ${n}`;\n")
with open(os.path.join(root, "package.json"), "w") as f:
    f.write('{"name": "lib", "version": "1.0.0", "main": "index.js"}\n')
PY
cat >"$proj/package.json" <<'JSON'
{"name": "app", "version": "1.0.0", "dependencies": {"lib": "file:vendor/lib"}}
JSON
cat >"$proj/index.ts" <<'TS'
import greet from 'lib';
export default { async fetch(): Promise<Response> { return Response.json({ msg: greet('v1') }); } };
TS
(cd "$proj" && npm install --package-lock-only --offline --no-audit --no-fund >/dev/null)

# Reference: npm ci of the same project, outside nubo.
ref=$BENCH_TMP/ref
cp -a "$proj" "$ref"
t0=$(date +%s.%N)
(cd "$ref" && npm ci --omit=dev --install-links --no-audit --no-fund >/dev/null 2>&1)
t1=$(date +%s.%N)
ref_s=$(python3 -c "print(f'{$t1-$t0:.3f}')")

start_nubo
deploy() {  # -> seconds from `nubo deploy` to READY
  local t0 t1
  t0=$(date +%s.%N)
  "$NUBO" deploy "$proj" --app built --json >"$BENCH_TMP/deploy.json"
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1-$t0:.3f}')"
}
cold=$(deploy)
sed -i "s/greet('v1')/greet('v2')/" "$proj/index.ts"
cached=$(deploy)
[[ $(curl -sf "$NUBO_DATA_URL/built/") == '{"msg":"hello v2"}' ]] || { echo "bench: the built app does not answer" >&2; exit 1; }

printf 'build of a TypeScript function with a %s-file dependency (%s cores)\n' "$DEP_FILES" "$(nproc)"
printf '  cold build (empty cache), deploy to READY   %7ss\n' "$cold"
printf '  cached build (lock unchanged), to READY     %7ss\n' "$cached"
printf '  reference: npm ci on this machine          %7ss\n' "$ref_s"
printf '  ratio cached/cold: %sx; cached/npm ci: %sx\n' "$(python3 -c "print(f'{$cached/$cold:.2f}')")" \
  "$(python3 -c "print(f'{$cached/$ref_s:.2f}')")"
