#!/usr/bin/env bash
# bench-e2e: the time to a first verdict, phase by phase, on this machine, in one run:
#   1. `rehearse images build` cold: every step rebuilt (--force) with an empty rehearse cache, an
#      empty Go build cache, an empty Go module cache (modules come from the proxy again) and none of
#      the images in Docker (removed first, with the layers docker build would have reused);
#      GNU time's wall time and CPU use; then the image sizes.
#   2. the smoke scenario on a cluster the run creates (warm: images built): cluster create, image
#      load, deploy, first request, end to end.
#   3. the smoke scenario again on the cluster the first run kept (--keep-cluster): the reused path.
# Usage: scripts/bench-e2e.sh [--skip-cold] [--cold-only]   (make bench-e2e); JOBS=1 builds the
# steps one after another (the build before parallel steps), for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/rehearse}
OUT=$(mktemp -d /tmp/rehearse-bench-XXXXXX)
cold=1 smoke=1
for a in "$@"; do
  case $a in
    --skip-cold) cold=0 ;;
    --cold-only) smoke=0 ;;
    *) echo "usage: $0 [--skip-cold] [--cold-only]" >&2; exit 2 ;;
  esac
done

report=()
note() { report+=("$(printf '%-44s %s' "$1" "$2")"); }

if [ "$cold" = 1 ]; then
  # Cold in Docker too: every image the build made goes (and with it the layers a docker build would
  # take from its cache), as on a machine that never built them.
  imgs=$(docker images -q --filter label=dev.rehearse.build-key | sort -u)
  [ -z "$imgs" ] || docker rmi -f $imgs >/dev/null 2>&1 || true
  docker image prune -f >/dev/null
  cache=$(mktemp -d /var/tmp/rehearse-bench-cache-XXXXXX)
  export REHEARSE_CACHE_DIR=$cache/rehearse GOCACHE=$cache/gocache GOMODCACHE=$cache/gomod
  /usr/bin/time -f "%e %P" -o "$OUT/cold.time" "$BIN" images build --force --jobs "${JOBS:-0}" | tee "$OUT/images.log"
  GOMODCACHE=$cache/gomod go clean -modcache >/dev/null 2>&1 || true
  rm -rf "$cache"
  unset REHEARSE_CACHE_DIR GOCACHE GOMODCACHE
  read -r secs cpu <"$OUT/cold.time"
  note "images build, cold, jobs ${JOBS:-$(nproc)} (wall, CPU)" "$(printf '%.0f s (%dm%02ds), %s CPU' "$secs" "$((${secs%.*} / 60))" "$((${secs%.*} % 60))" "$cpu")"
  while read -r _ name _ rest; do
    note "  step $name" "${rest##* in }"
  done < <(grep '^built ' "$OUT/images.log")
fi
for ref in rehearse.local/postgres:15 rehearse.local/orders:dev rehearse.local/kube:v1.34.4 rehearse.local/kind-node:v1.34.4; do
  note "image size $ref" "$(docker image inspect --format '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}')"
done

# stamp prefixes each line with the seconds since the run started.
us() { echo "${EPOCHREALTIME/./}"; }
stamp() { local t0 t; t0=$(us); while IFS= read -r l; do t=$(( $(us) - t0 )); printf '%4d.%d %s\n' $((t / 1000000)) $((t / 100000 % 10)) "$l"; done; }
smoke() { # $1: label, $2...: extra flags
  local label=$1; shift
  local t0 t1
  t0=$(us)
  "$BIN" run scenarios/smoke.yaml --out "$OUT/$label" "$@" 2>&1 | stamp | tee "$OUT/$label.log" >&2
  t1=$(us)
  local create load deploy first
  create=$(awk '/creating kind cluster/{c=1} c&&/done in/{print $NF; exit}' "$OUT/$label.log")
  load=$(awk '/loading the sample/{c=1} c&&/done in/{print $NF; exit}' "$OUT/$label.log")
  deploy=$(awk '/deploying orders-postgres/{c=1} c&&/done in/{print $NF; exit}' "$OUT/$label.log")
  first=$(awk '/ step .* at 0s/{print $1 " s"; exit}' "$OUT/$label.log")
  note "smoke ($label): cluster create" "${create:-(reused)}"
  note "smoke ($label): image load" "${load:-(already in the nodes)}"
  note "smoke ($label): deploy" "${deploy:--}"
  note "smoke ($label): first request after start" "${first:--}"
  note "smoke ($label): end to end" "$(( (t1 - t0) / 1000000 )) s"
  if [ "$label" = warm ] && [ -n "${secs:-}" ]; then
    note "first verdict: cold build + this smoke" "$(( ${secs%.*} + (t1 - t0) / 1000000 )) s (a new machine adds compiling rehearse beside installing Docker, ~80 s)"
  fi
}
if [ "$smoke" = 1 ]; then
  smoke warm --keep-cluster
  smoke reused
  "$BIN" cluster delete --name rehearse >/dev/null 2>&1 || true
fi

echo
echo "bench-e2e ($(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)); logs in $OUT"
printf '%s\n' "${report[@]}"
