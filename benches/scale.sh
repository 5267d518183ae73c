#!/usr/bin/env bash
# Link-table scale: load time and memory for large tables.
#
#   benches/scale.sh                 # 1M and 10M links (about 3 GB of CSV in a temporary folder)
#   benches/scale.sh 100000 1000000  # other sizes
#
# For each size: generates the table with data/gen_links.py, then
#   1. `clickstream check` under `/usr/bin/time -v`: wall time and peak resident memory of a
#      load alone;
#   2. `clickstream serve` with that table: time until /readyz answers, resident memory once
#      loaded, then a reload (SIGHUP) of the same file: peak resident memory during the
#      reload and resident memory 10 s after it.
# Prints one Markdown table. Builds clickstream with `cargo build --release` first
# (--no-build to skip). Listens on 127.0.0.1:18181 and :18182.

set -euo pipefail
export LC_ALL=C

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BINARY="$REPO_DIR/target/release/clickstream"
BUILD=1
SIZES=()
WORK_DIR=""
SERVER_PID=""

cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -z $WORK_DIR ]] || rm -rf "$WORK_DIR"
}

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
    case $arg in
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) [[ $arg =~ ^[1-9][0-9]*$ ]] || die "a size must be a positive integer, not '$arg'"; SIZES+=("$arg") ;;
    esac
done
((${#SIZES[@]})) || SIZES=(1000000 10000000)
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

trap cleanup EXIT
if ((BUILD)); then
    (cd "$REPO_DIR" && cargo build --release --locked --quiet)
fi
[[ -x $BINARY ]] || die "$BINARY is missing: run 'cargo build --release'"
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/clickstream-scale.XXXXXX")

# status_kb PID FIELD: a VmRSS / VmHWM figure of PID, in kB.
status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# measure_serve LINKS: prints "ready_s rss_loaded_mb hwm_reload_mb rss_after_reload_mb".
measure_serve() {
    local links=$1 start ready loaded hwm after
    rm -rf "$WORK_DIR/spool"
    cat >"$WORK_DIR/scale.toml" <<EOF
[server]
listen = "127.0.0.1:18181"
admin_listen = "127.0.0.1:18182"
spool_dir = "$WORK_DIR/spool"
reload_poll_interval = "0s"
[[sink]]
type = "file"
name = "events"
dir = "$WORK_DIR/spool/events"
EOF
    start=$EPOCHREALTIME
    "$BINARY" serve --config "$WORK_DIR/scale.toml" --links "$links" >"$WORK_DIR/serve.log" 2>&1 &
    SERVER_PID=$!
    until curl -sf -o /dev/null --max-time 1 http://127.0.0.1:18182/readyz; do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK_DIR/serve.log" >&2; die "clickstream serve exited"; }
        sleep 0.05
    done
    ready=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    sleep 2
    loaded=$(status_kb "$SERVER_PID" VmRSS)
    kill -HUP "$SERVER_PID"
    until grep -q 'link table reloaded\|reload refused' "$WORK_DIR/serve.log"; do sleep 0.1; done
    grep -q 'link table reloaded' "$WORK_DIR/serve.log" || die "the reload was refused: see $WORK_DIR/serve.log"
    sleep 10
    hwm=$(status_kb "$SERVER_PID" VmHWM)
    after=$(status_kb "$SERVER_PID" VmRSS)
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    echo "$ready $(mb "$loaded") $(mb "$hwm") $(mb "$after")"
}

printf '| links | CSV MB | check: wall s | check: peak MB | serve: ready s | resident after load MB | peak during reload MB | resident 10 s after reload MB |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for size in "${SIZES[@]}"; do
    links="$WORK_DIR/links-$size.csv"
    python3 "$REPO_DIR/data/gen_links.py" --count "$size" --out "$links" >/dev/null
    /usr/bin/time -v "$BINARY" check --links "$links" >/dev/null 2>"$WORK_DIR/time.txt" ||
        { cat "$WORK_DIR/time.txt" >&2; die "clickstream check failed"; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$WORK_DIR/time.txt")
    peak=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK_DIR/time.txt")
    read -r ready loaded hwm after < <(measure_serve "$links")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$size" "$(($(stat -c %s "$links") / 1000000))" \
        "$wall" "$(mb "$peak")" "$ready" "$loaded" "$hwm" "$after"
    rm -f "$links"
done
