#!/usr/bin/env bash
# End-to-end throughput comparison: clickstream against nginx, on this machine.
#
#   benches/compare.sh             # defaults: 4 rounds of 10 s, 64 connections, 100k links (~7 min + build)
#   benches/compare.sh --duration 3 --rounds 1 --links 10000 --no-latency    # a quick look
#   benches/compare.sh --no-https  # only the four plain-HTTP systems
#   benches/compare.sh --help
#
# Both servers get the same link table (one domain, brand.link) and the same load: wrk with
# realistic clicks (benches/compare/clicks.lua: every slashtag of the table, browser, in-app and
# bot user agents, referrers, Accept-Language, X-Forwarded-For, Host: brand.link). In each
# round, one after the other, in this order (reversed in even rounds, so that a machine that
# speeds up or slows down during the run favours neither side of a pair; each clickstream
# system runs next to the nginx it is compared with):
#
#   nginx-nolog          map $uri -> 301, access log off
#   clickstream-webhook  clickstream, click events to a local webhook receiver
#   nginx-log            the same nginx, with a `combined` access log written to a file
#   clickstream-file     clickstream, click events to its NDJSON file sink
#   nginx-https          nginx-log's setup, terminating TLS (`listen ... ssl`)
#   clickstream-https    clickstream-webhook's setup, wrk driving its TLS listener (`tls_listen`)
#
# The two HTTPS systems share one self-signed certificate for brand.link (ECDSA P-256, made with
# openssl for each benchmark run); wrk speaks HTTP/1.1 over its keep-alive TLS connections, with
# the URL's address 127.0.0.1 as SNI, so clickstream serves its `[tls] default_domain`
# certificate and nginx its only one. Skip them with --no-https; without openssl (or with an
# nginx built without its ssl module) they are skipped with a warning, also in the report.
#
# For clickstream, every run starts a fresh process (fresh counters and spool) and, after the
# load, waits for delivery to catch up, then checks that the events delivered equal the
# redirects served (`clickstream_redirects_total`). Then the latency step, unless --no-latency:
# the probe `benches/compare/pace.rs` sends requests on an even schedule at half of the median
# peak and times each from the instant it was due (after a warm-up on the same schedule, left
# out of the percentiles, as wrk2 leaves out its calibration), for clickstream-webhook and
# nginx-log (each at half of its own peak, and the faster one also at half of the slower one's),
# alternating over --latency-rounds. (oha -q, the usual choice, releases its requests in bursts on 1 ms timer
# ticks, which sets the percentiles of any server at these rates; see pace.rs.)
#
# Installs what is missing: nginx and wrk from Debian packages. Builds clickstream, the webhook
# receiver (`benches/compare/receiver.rs`, the `compare-receiver` example) and the latency
# probe (`compare-pace`) with `cargo build --release`; on a fresh clone that first build took
# 4.5 minutes on a 2-core machine (an example also builds the dev-dependencies).
# Everything listens on 127.0.0.1, on six ports from --port-base; every process started here is
# stopped on exit or Ctrl-C.
# Results: benches/compare/results/latest.md (Markdown, ready for the README) and latest.svg.

set -euo pipefail
export LC_ALL=C

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO_DIR/benches/compare"
RESULTS_DIR="$HELPERS/results"
BINARY="$REPO_DIR/target/release/clickstream"
RECEIVER="$REPO_DIR/target/release/examples/compare-receiver"
PACE="$REPO_DIR/target/release/examples/compare-pace"
COMMAND_LINE="benches/compare.sh${*:+ $*}"

# Settings (see usage).
DURATION=10
ROUNDS=4
CONNECTIONS=64
THREADS=2
LINKS=100000
LATENCY_DURATION=10
LATENCY_WARMUP=2
LATENCY_ROUNDS=3
LATENCY_CONNECTIONS=auto
LATENCY_RATE=
RUN_LATENCY=1
RUN_HTTPS=1
BUILD=1
PORT_BASE=18080
NGINX_WORKERS=auto
CATCHUP_TIMEOUT=30
KEEP_WORK_DIR=0

SYSTEMS=(nginx-nolog clickstream-webhook nginx-log clickstream-file)
HTTPS_SYSTEMS=(nginx-https clickstream-https)

# State: the work directory, the processes started (stopped on exit), the current servers.
WORK_DIR=""
STARTED_PIDS=()
STARTED_PID=""
CREATED_POLICY_RC=0
NGINX=""
NGINX_PID=""
CLICKSTREAM_PID=""
RECEIVER_PID=""
SLASHTAGS=""
CERT_DIR=""
HTTPS_SKIPPED=""
CLOCK_TICKS=100

usage() {
    cat <<EOF
Usage: benches/compare.sh [options]

Compares clickstream against nginx serving the same redirects, with wrk, on 127.0.0.1.

  --duration SEC        wrk duration of each run (default $DURATION)
  --rounds N            rounds; each runs every system once (default $ROUNDS)
  --connections N       wrk connections (default $CONNECTIONS)
  --threads N           wrk threads (default $THREADS)
  --links N             links in the table (default $LINKS)
  --latency-duration SEC    measured duration of each latency-at-half-peak run (default $LATENCY_DURATION)
  --latency-warmup SEC      load before it, on the same schedule, left out of the percentiles
                            but for a p99 with it (default $LATENCY_WARMUP; 0 for none)
  --latency-rounds N        rounds of the latency step (default $LATENCY_ROUNDS)
  --latency-connections N   the latency probe's connections, an even number (default: one per
                            2,000 req/s of the rate, at least 4, so each sends a request every 0.5 ms)
  --latency-rate N      also probe both clickstream-webhook and nginx-log at N req/s, in every
                        latency round (to see the latency where the machine is less busy)
  --no-latency          skip the latency-at-half-peak step
  --no-https            skip the two HTTPS systems (nginx-https, clickstream-https)
  --no-build            do not run 'cargo build --release' first
  --port-base PORT      first of the 6 ports used on 127.0.0.1 (default $PORT_BASE)
  --nginx-workers N     nginx worker_processes (default $NGINX_WORKERS)
  --catchup-timeout SEC how long to wait for clickstream's deliveries after a run (default $CATCHUP_TIMEOUT)
  --keep                keep the work directory (configs, logs, raw results)
  -h, --help            this text

Writes benches/compare/results/latest.md and latest.svg.
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

parse_args() {
    while (($#)); do
        case "$1" in
            --duration) DURATION=${2:?}; shift ;;
            --rounds) ROUNDS=${2:?}; shift ;;
            --connections) CONNECTIONS=${2:?}; shift ;;
            --threads) THREADS=${2:?}; shift ;;
            --links) LINKS=${2:?}; shift ;;
            --latency-duration) LATENCY_DURATION=${2:?}; shift ;;
            --latency-warmup) LATENCY_WARMUP=${2:?}; shift ;;
            --latency-rounds) LATENCY_ROUNDS=${2:?}; shift ;;
            --latency-connections) LATENCY_CONNECTIONS=${2:?}; shift ;;
            --latency-rate) LATENCY_RATE=${2:?}; shift ;;
            --no-latency) RUN_LATENCY=0 ;;
            --no-https) RUN_HTTPS=0 ;;
            --no-build) BUILD=0 ;;
            --port-base) PORT_BASE=${2:?}; shift ;;
            --nginx-workers) NGINX_WORKERS=${2:?}; shift ;;
            --catchup-timeout) CATCHUP_TIMEOUT=${2:?}; shift ;;
            --keep) KEEP_WORK_DIR=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option '$1'" ;;
        esac
        shift
    done
    local name value flag
    for name in DURATION ROUNDS CONNECTIONS THREADS LINKS LATENCY_DURATION LATENCY_ROUNDS PORT_BASE CATCHUP_TIMEOUT; do
        value=${!name}
        flag=${name,,}
        [[ $value =~ ^[1-9][0-9]*$ ]] || die "--${flag//_/-} must be a positive integer, not '$value'"
    done
    [[ $LATENCY_WARMUP =~ ^[0-9]+$ ]] || die "--latency-warmup must be a whole number of seconds, not '$LATENCY_WARMUP'"
    ((CONNECTIONS >= THREADS)) || die "--connections must be at least --threads"
    [[ $LATENCY_CONNECTIONS == auto || ($LATENCY_CONNECTIONS =~ ^[1-9][0-9]*$ && $((LATENCY_CONNECTIONS % 2)) == 0) ]] ||
        die "--latency-connections: an even positive integer or 'auto', not '$LATENCY_CONNECTIONS'"
    [[ -z $LATENCY_RATE || $LATENCY_RATE =~ ^[1-9][0-9]*$ ]] ||
        die "--latency-rate must be a positive integer, not '$LATENCY_RATE'"
    ((PORT_BASE + 5 <= 65535)) || die "--port-base is too high"
    [[ $NGINX_WORKERS == auto || $NGINX_WORKERS =~ ^[1-9][0-9]*$ ]] || die "--nginx-workers: a number or 'auto'"

    NGINX_PORT=$PORT_BASE
    CLICKSTREAM_PORT=$((PORT_BASE + 1))
    ADMIN_PORT=$((PORT_BASE + 2))
    RECEIVER_PORT=$((PORT_BASE + 3))
    NGINX_TLS_PORT=$((PORT_BASE + 4))
    CLICKSTREAM_TLS_PORT=$((PORT_BASE + 5))
}

# ---------------------------------------------------------------------------------------------
# Processes and cleanup

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        stop_process "$pid"
    done
    if ((CREATED_POLICY_RC)); then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
        if ((KEEP_WORK_DIR || (status != 0 && status != 130))); then
            log "work directory kept (configs, logs, raw results): $WORK_DIR"
        else
            rm -rf "$WORK_DIR"
        fi
    fi
    exit "$status"
}

on_signal() {
    warn "interrupted: stopping everything started here"
    exit 130
}

# start_process LOG_FILE COMMAND...: runs COMMAND in the background; its pid is in STARTED_PID.
start_process() {
    local log_file=$1
    shift
    "$@" >"$log_file" 2>&1 &
    STARTED_PID=$!
    STARTED_PIDS+=("$STARTED_PID")
}

# stop_process PID [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace period.
stop_process() {
    local pid=$1 grace=${2:-15} tick=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null && ((tick < grace * 10)); do
            sleep 0.1
            tick=$((tick + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "process $pid did not stop within ${grace}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    local remaining=() p
    for p in "${STARTED_PIDS[@]}"; do
        [[ $p == "$pid" ]] || remaining+=("$p")
    done
    STARTED_PIDS=("${remaining[@]}")
}

# machine_ticks: "busy total" clock ticks of all CPUs so far (/proc/stat; idle and iowait are not
# busy, steal is left out of both).
machine_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat
}

# busy_percent BEFORE AFTER: the machine's busy share between two machine_ticks readings.
busy_percent() {
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$2"
    ((t1 > t0)) && echo $(((b1 - b0) * 100 / (t1 - t0))) || echo 0
}

# cpu_ticks PID: user + system clock ticks of PID and its children (nginx's workers).
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$1" $(pgrep -P "$1" || true); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# record_cpu FILE KEY TICKS_BEFORE PID: appends KEY=<CPU seconds of PID since TICKS_BEFORE>.
record_cpu() {
    local ticks
    ticks=$(($(cpu_ticks "$4") - $3))
    printf '%s=%s\n' "$2" "$(awk -v t="$ticks" -v hz="$CLOCK_TICKS" 'BEGIN { printf "%.2f", t / hz }')" >>"$1"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for_http URL PID TIMEOUT_SECONDS: until URL answers anything at all (https: any certificate).
wait_for_http() {
    local url=$1 pid=$2 timeout=$3 tick=0
    while ((tick < timeout * 10)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -s -k -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.1
        tick=$((tick + 1))
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Tools

# install_debian_packages NGINX_NEEDED WRK_NEEDED: nginx-light (else nginx) and wrk.
install_debian_packages() {
    local nginx_needed=$1 wrk_needed=$2 extra=()
    ((wrk_needed)) && extra+=(wrk)
    ((EUID == 0)) || die "installing packages needs root: apt-get install nginx-light wrk"
    # Keep the package's own nginx service from starting (it would listen on port 80).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    apt-get update -qq
    if ((nginx_needed)); then
        log "apt-get install nginx-light ${extra[*]}"
        if ! apt-get install -y -qq nginx-light "${extra[@]}" >/dev/null; then
            log "no nginx-light here: apt-get install nginx ${extra[*]}"
            apt-get install -y -qq nginx "${extra[@]}" >/dev/null
        fi
    else
        log "apt-get install ${extra[*]}"
        apt-get install -y -qq "${extra[@]}" >/dev/null
    fi
    if ((CREATED_POLICY_RC)); then
        rm -f /usr/sbin/policy-rc.d
        CREATED_POLICY_RC=0
    fi
}

nginx_binary() {
    command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

ensure_tools() {
    local tool
    for tool in python3 curl; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    local nginx_needed=0 wrk_needed=0
    [[ -n $(nginx_binary) ]] || nginx_needed=1
    command -v wrk >/dev/null || wrk_needed=1
    if ((nginx_needed || wrk_needed)); then
        install_debian_packages "$nginx_needed" "$wrk_needed"
    fi
    CLOCK_TICKS=$(getconf CLK_TCK)
    NGINX=$(nginx_binary)
    [[ -n $NGINX ]] || die "nginx could not be installed"
    command -v wrk >/dev/null || die "wrk could not be installed"
    check_https_tools
}

# check_https_tools: the HTTPS systems need openssl (certificate, handshake check) and nginx's
# ssl module; without them they are skipped with a warning, and the report says why.
check_https_tools() {
    ((RUN_HTTPS)) || return 0
    if ! command -v openssl >/dev/null; then
        HTTPS_SKIPPED="openssl is not installed (apt-get install openssl)"
    elif ! "$NGINX" -V 2>&1 | grep -q -- --with-http_ssl_module; then
        HTTPS_SKIPPED="$NGINX has no ssl module"
    fi
    if [[ -n $HTTPS_SKIPPED ]]; then
        warn "skipping nginx-https and clickstream-https: $HTTPS_SKIPPED"
        RUN_HTTPS=0
    else
        SYSTEMS+=("${HTTPS_SYSTEMS[@]}")
    fi
}

build_clickstream() {
    if ((BUILD)); then
        log "cargo build --release --bin clickstream --example compare-receiver --example compare-pace"
        (cd "$REPO_DIR" && cargo build --release --locked --quiet --bin clickstream --example compare-receiver \
            --example compare-pace)
    fi
    [[ -x $BINARY ]] || die "$BINARY is missing: run 'cargo build --release'"
    [[ -x $RECEIVER ]] || die "$RECEIVER is missing: run 'cargo build --release --example compare-receiver'"
    ((RUN_LATENCY == 0)) || [[ -x $PACE ]] || die "$PACE is missing: run 'cargo build --release --example compare-pace'"
}

# The runs use a copy of the binary, so that a rebuild during the benchmark changes nothing.
snapshot_binary() {
    cp "$BINARY" "$WORK_DIR/clickstream"
    BINARY="$WORK_DIR/clickstream"
    cp "$RECEIVER" "$WORK_DIR/compare-receiver"
    RECEIVER="$WORK_DIR/compare-receiver"
    if ((RUN_LATENCY)); then
        cp "$PACE" "$WORK_DIR/compare-pace"
        PACE="$WORK_DIR/compare-pace"
    fi
}

check_ports_free() {
    local port ports=("$NGINX_PORT" "$CLICKSTREAM_PORT" "$ADMIN_PORT" "$RECEIVER_PORT")
    ((RUN_HTTPS == 0)) || ports+=("$NGINX_TLS_PORT" "$CLICKSTREAM_TLS_PORT")
    for port in "${ports[@]}"; do
        ! port_in_use "$port" || die "port $port on 127.0.0.1 is in use: choose others with --port-base"
    done
}

# ---------------------------------------------------------------------------------------------
# Configuration

generate_links() {
    log "generating $LINKS links on brand.link"
    python3 "$HELPERS/links.py" --count "$LINKS" --dir "$WORK_DIR/links" >/dev/null
    SLASHTAGS="$WORK_DIR/links/slashtags.txt"
}

# generate_certificate: one self-signed certificate for brand.link, for both HTTPS systems, as
# clickstream's [tls] dir wants it (<domain>.crt and <domain>.key).
generate_certificate() {
    CERT_DIR="$WORK_DIR/certs"
    mkdir -p "$CERT_DIR"
    log "generating a self-signed ECDSA P-256 certificate for brand.link"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=brand.link -addext subjectAltName=DNS:brand.link \
        -keyout "$CERT_DIR/brand.link.key" -out "$CERT_DIR/brand.link.crt" >"$CERT_DIR/openssl.out" 2>&1; then
        cat "$CERT_DIR/openssl.out" >&2
        die "openssl could not make the certificate"
    fi
}

# write_nginx_config DIR ACCESS_LOG_DIRECTIVE [TLS]: TLS 1 listens with ssl on NGINX_TLS_PORT.
write_nginx_config() {
    local dir=$1 access_log=$2 tls=${3:-0} hash_size=1024 listen
    while ((hash_size < LINKS * 2)); do hash_size=$((hash_size * 2)); done
    listen="listen 127.0.0.1:$NGINX_PORT;"
    if ((tls)); then
        listen="listen 127.0.0.1:$NGINX_TLS_PORT ssl;
        ssl_certificate $CERT_DIR/brand.link.crt;
        ssl_certificate_key $CERT_DIR/brand.link.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
    fi
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    $access_log
    server_tokens off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;

    map_hash_max_size $hash_size;
    map_hash_bucket_size 128;
    map \$uri \$dest {
        default "";
        include $WORK_DIR/links/links.map;
    }

    server {
        $listen
        server_name brand.link;

        location / {
            if (\$dest = "") {
                return 404;
            }
            add_header Cache-Control "private, max-age=90" always;
            return 301 \$dest;
        }
    }
}
EOF
}

# write_clickstream_config DIR SINK_TOML [TLS]: TLS 1 adds the TLS listener, with the shared
# certificate as the default for clients with no or an unknown SNI.
write_clickstream_config() {
    local dir=$1 sink=$2 tls=${3:-0} tls_listen="" tls_table=""
    if ((tls)); then
        tls_listen="tls_listen = \"127.0.0.1:$CLICKSTREAM_TLS_PORT\""
        printf -v tls_table '[tls]\ndir = "%s"\ndefault_domain = "brand.link"\n' "$CERT_DIR"
    fi
    mkdir -p "$dir"
    cat >"$dir/clickstream.toml" <<EOF
[server]
listen = "127.0.0.1:$CLICKSTREAM_PORT"
$tls_listen
admin_listen = "127.0.0.1:$ADMIN_PORT"
links = "$WORK_DIR/links/links.csv"
default_domain = "brand.link"
node_id = "bench"
spool_dir = "$dir/spool"
trusted_proxies = ["127.0.0.1"]
reload_poll_interval = "0s"

$tls_table
$sink
EOF
}

file_sink() {
    printf '[[sink]]\ntype = "file"\nname = "events"\ndir = "%s/events"\n' "$1"
}

webhook_sink() {
    printf '[[sink]]\ntype = "webhook"\nname = "receiver"\nurl = "http://127.0.0.1:%s/clicks"\nkey = "compare"\n' "$RECEIVER_PORT"
}

# ---------------------------------------------------------------------------------------------
# Runs

# free_mb DIR: megabytes free on DIR's file system for this user.
free_mb() {
    df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1024) }'
}

# run_wrk OUT_FILE URL
run_wrk() {
    local out=$1 url=$2 status=0
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency \
        -s "$HELPERS/clicks.lua" "$url" -- "$SLASHTAGS" >"$out" 2>&1 || status=$?
    grep -q '^WRK_JSON ' "$out" 2>/dev/null && return
    cat "$out" >&2 2>/dev/null
    die "wrk against $url failed (exit status $status; its output, above, is in $out; $(free_mb "$WORK_DIR") MB free in $WORK_DIR)"
}

# check_free_space: a clickstream run writes its events twice (spool and file sink, or spool and
# the receiver's copy in memory), about 1 KB per request, before they are deleted after the run.
check_free_space() {
    local need free
    need=$((DURATION * 200 + 1024))
    free=$(free_mb "$WORK_DIR")
    [[ -z $free ]] || ((free >= need)) ||
        die "$WORK_DIR: $free MB free; a ${DURATION} s run of clickstream can write about $need MB (--duration sets it)"
}

wrk_summary() {
    python3 - "$1" <<'EOF'
import json, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("WRK_JSON "))
r = json.loads(line[9:])
errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"{rps:,.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, errors {errors}")
EOF
}

# start_nginx DIR ACCESS_LOG_DIRECTIVE [TLS]: nginx in its own prefix DIR (TLS 1: HTTPS on
# NGINX_TLS_PORT); its pid in NGINX_PID.
start_nginx() {
    local dir=$1 tls=${3:-0} url="http://127.0.0.1:$NGINX_PORT"
    ((tls == 0)) || url="https://127.0.0.1:$NGINX_TLS_PORT"
    write_nginx_config "$dir" "$2" "$tls"
    start_process "$dir/nginx.out" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -g "daemon off;"
    NGINX_PID=$STARTED_PID
    if ! wait_for_http "$url/" "$NGINX_PID" 60; then
        cat "$dir/nginx.out" "$dir/logs/error.log" >&2 2>/dev/null || true
        die "nginx did not start"
    fi
    check_nginx_answers "$url"
    ((tls == 0)) || check_tls nginx "$NGINX_TLS_PORT" "$dir"
}

# stop_nginx DIR: stops it and keeps only the access log's line count.
stop_nginx() {
    local dir=$1
    stop_process "$NGINX_PID"
    if [[ -f $dir/logs/access.log ]]; then
        wc -l <"$dir/logs/access.log" | tr -d ' ' >"$dir/access_log_lines"
        rm -f "$dir/logs/access.log"
    fi
}

run_nginx() {
    local system=$1 dir=$2 access_log="access_log off;" tls=0 url="http://127.0.0.1:$NGINX_PORT" ticks
    [[ $system == nginx-nolog ]] || access_log="access_log $dir/logs/access.log combined;"
    if [[ $system == nginx-https ]]; then
        tls=1
        url="https://127.0.0.1:$NGINX_TLS_PORT"
    fi
    start_nginx "$dir" "$access_log" "$tls"
    ticks=$(cpu_ticks "$NGINX_PID")
    run_wrk "$dir/wrk.txt" "$url"
    record_cpu "$dir/cpu.env" server_cpu_seconds "$ticks" "$NGINX_PID"
    stop_nginx "$dir"
}

# check_nginx_answers BASE_URL: the first slashtag must get its 301 (https: any certificate).
check_nginx_answers() {
    local first location
    first=$(head -n 1 "$SLASHTAGS")
    location=$(curl -s -k -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: brand.link' "$1/$first")
    [[ $location == "301 https://"* ]] || die "nginx answered '$location' for $1/$first"
}

# check_tls SERVER PORT DIR: a bare TLS handshake with the SNI wrk sends for an IP URL (the address
# itself, which names no domain) must present the brand.link certificate; the protocol and cipher
# suite negotiated go to DIR/tls.env. No HTTP request is sent, so no click is counted.
check_tls() {
    local server=$1 port=$2 dir=$3 out
    if ! out=$(timeout 10 openssl s_client -brief -connect "127.0.0.1:$port" -servername 127.0.0.1 </dev/null 2>&1) ||
        ! grep -q '^Peer certificate: .*CN *= *brand\.link' <<<"$out"; then
        printf '%s\n' "$out" >&2
        die "$server on port $port: no TLS handshake with the brand.link certificate"
    fi
    printf 'tls_protocol=%s\ntls_cipher=%s\n' "$(sed -n 's/^Protocol version: //p' <<<"$out")" \
        "$(sed -n 's/^Ciphersuite: //p' <<<"$out")" >"$dir/tls.env"
}

metric_sum() {
    # metric_sum METRICS_FILE PREFIX: sum of the samples whose name{labels} starts with PREFIX.
    awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }' "$1"
}

# uses_webhook SYSTEM: whether SYSTEM's clickstream delivers to the local webhook receiver.
uses_webhook() {
    [[ $1 == clickstream-webhook || $1 == clickstream-https ]]
}

# count_events SYSTEM DIR: events delivered so far (receiver's unique ids, or NDJSON lines).
count_events() {
    if uses_webhook "$1"; then
        curl -s --max-time 2 "http://127.0.0.1:$RECEIVER_PORT/count" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["unique"])' 2>/dev/null || echo 0
    else
        local files=("$2"/events/*.ndjson)
        if [[ -e ${files[0]} ]]; then cat "${files[@]}" | wc -l | tr -d ' '; else echo 0; fi
    fi
}

# wait_for_delivery SYSTEM DIR: until the events delivered reach the redirects served.
wait_for_delivery() {
    local system=$1 dir=$2 tick=0 redirects=-1 previous=-2 events=0 start=$EPOCHREALTIME
    while ((tick < CATCHUP_TIMEOUT * 5)); do
        curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$dir/metrics.txt" || true
        previous=$redirects
        redirects=$(metric_sum "$dir/metrics.txt" 'clickstream_redirects_total{status="301"}')
        events=$(count_events "$system" "$dir")
        if ((redirects == previous && events >= redirects)); then
            break
        fi
        sleep 0.2
        tick=$((tick + 1))
    done
    printf 'redirects=%s\nevents=%s\ncatchup_seconds=%s\n' "$redirects" "$events" \
        "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" >"$dir/counts.env"
}

# start_clickstream SYSTEM DIR: a fresh clickstream (and, for the webhook, a fresh receiver);
# their pids in CLICKSTREAM_PID and RECEIVER_PID ("" without a receiver). clickstream-https
# also listens with TLS on CLICKSTREAM_TLS_PORT.
start_clickstream() {
    local system=$1 dir=$2 tls=0 tls_port=""
    if [[ $system == clickstream-https ]]; then
        tls=1
        tls_port=$CLICKSTREAM_TLS_PORT
    fi
    RECEIVER_PID=""
    if uses_webhook "$system"; then
        start_process "$dir/receiver.out" "$RECEIVER" --port "$RECEIVER_PORT"
        RECEIVER_PID=$STARTED_PID
        wait_for_http "http://127.0.0.1:$RECEIVER_PORT/count" "$RECEIVER_PID" 20 || die "the webhook receiver did not start"
        write_clickstream_config "$dir" "$(webhook_sink)" "$tls"
    else
        write_clickstream_config "$dir" "$(file_sink "$dir")" "$tls"
    fi
    start_process "$dir/clickstream.log" "$BINARY" serve --config "$dir/clickstream.toml"
    CLICKSTREAM_PID=$STARTED_PID
    if ! wait_for_ready "$CLICKSTREAM_PID" 120 "$tls_port"; then
        cat "$dir/clickstream.log" >&2
        die "clickstream did not start"
    fi
    ((tls == 0)) || check_tls clickstream "$tls_port" "$dir"
}

# wait_for_ready PID TIMEOUT_SECONDS [TLS_PORT]: until clickstream's /readyz answers 200 and its
# redirect ports accept connections (a bare connect: a request would be counted in its metrics).
wait_for_ready() {
    local pid=$1 timeout=$2 tls_port=${3:-} tick=0
    while ((tick < timeout * 10)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz") == 200 ]] &&
            port_in_use "$CLICKSTREAM_PORT" && { [[ -z $tls_port ]] || port_in_use "$tls_port"; }; then
            return 0
        fi
        sleep 0.1
        tick=$((tick + 1))
    done
    return 1
}

# finish_clickstream SYSTEM DIR CPU_TICKS_BEFORE: waits for delivery, records the CPU used,
# stops clickstream gracefully, counts the events again, stops the receiver, checks the counts.
finish_clickstream() {
    local system=$1 dir=$2 ticks=$3
    wait_for_delivery "$system" "$dir"
    record_cpu "$dir/cpu.env" server_cpu_seconds "$ticks" "$CLICKSTREAM_PID"
    [[ -z $RECEIVER_PID ]] || record_cpu "$dir/cpu.env" receiver_cpu_seconds 0 "$RECEIVER_PID"
    stop_process "$CLICKSTREAM_PID" 30
    # After a graceful stop every answered click must have been delivered too.
    printf 'events_after_stop=%s\n' "$(count_events "$system" "$dir")" >>"$dir/counts.env"
    if [[ -n $RECEIVER_PID ]]; then
        curl -s --max-time 2 "http://127.0.0.1:$RECEIVER_PORT/count" >"$dir/receiver.json" || true
        stop_process "$RECEIVER_PID"
    fi
    rm -rf "$dir/events" "$dir/spool"
    report_delivery "$system" "$dir"
}

run_clickstream() {
    local system=$1 dir=$2 url="http://127.0.0.1:$CLICKSTREAM_PORT" ticks
    [[ $system != clickstream-https ]] || url="https://127.0.0.1:$CLICKSTREAM_TLS_PORT"
    start_clickstream "$system" "$dir"
    ticks=$(cpu_ticks "$CLICKSTREAM_PID")
    run_wrk "$dir/wrk.txt" "$url"
    finish_clickstream "$system" "$dir" "$ticks"
}

report_delivery() {
    local system=$1 dir=$2 redirects events events_after_stop catchup_seconds
    # shellcheck disable=SC1091
    source "$dir/counts.env"
    printf '      %s redirects served, %s events delivered (%s after stop), caught up in %ss\n' \
        "$redirects" "$events" "$events_after_stop" "$catchup_seconds" >&2
    if ((redirects != events)); then
        warn "$system: $events events delivered for $redirects redirects served"
    fi
}

run_round() {
    local round=$1 system dir order=("${SYSTEMS[@]}") i
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#SYSTEMS[@]} - 1; i >= 0; i--)); do order+=("${SYSTEMS[i]}"); done
    fi
    for system in "${order[@]}"; do
        dir="$WORK_DIR/runs/round$round-$system"
        mkdir -p "$dir"
        log "round $round/$ROUNDS: $system (${DURATION}s)"
        case $system in
            nginx-*) run_nginx "$system" "$dir" ;;
            clickstream-*) run_clickstream "$system" "$dir" ;;
        esac
        printf '      %s\n' "$(wrk_summary "$dir/wrk.txt")" >&2
    done
}

# ---------------------------------------------------------------------------------------------
# Latency at half of the peak (the paced probe, benches/compare/pace.rs)

median_rps() {
    python3 - "$WORK_DIR/runs" "$1" <<'EOF'
import glob, json, statistics, sys
rates = []
for path in glob.glob(f"{sys.argv[1]}/round*-{sys.argv[2]}/wrk.txt"):
    r = json.loads(next(l for l in open(path) if l.startswith("WRK_JSON "))[9:])
    rates.append(r["requests"] / (r["duration_us"] / 1e6))
print(int(statistics.median(rates)))
EOF
}

# run_latency SYSTEM RATE LABEL ROUND: latency of SYSTEM (nginx-log or clickstream-webhook) at RATE req/s.
run_latency() {
    local system=$1 rate=$2 label=$3 round=$4 port ticks=0 connections=$LATENCY_CONNECTIONS
    local dir="$WORK_DIR/runs/latency$round-$label"
    mkdir -p "$dir"
    # Enough connections that one is idle most of the time when its next request falls due:
    # with a request every 0.5 ms and answers in about 0.15 ms, few wait behind another. An
    # even number, shared by the probe's two threads.
    if [[ $connections == auto ]]; then
        connections=$(((rate + 3999) / 4000 * 2))
        ((connections >= 4)) || connections=4
    fi
    log "latency round $round: $system at $rate req/s, $connections connections, ${LATENCY_WARMUP}s + ${LATENCY_DURATION}s ($label)"
    if [[ $system == nginx-log ]]; then
        port=$NGINX_PORT
        start_nginx "$dir" "access_log $dir/logs/access.log combined;"
    else
        port=$CLICKSTREAM_PORT
        start_clickstream "$system" "$dir"
        ticks=$(cpu_ticks "$CLICKSTREAM_PID")
    fi
    sed 's|^|/|' "$SLASHTAGS" >"$dir/paths.txt"
    local machine_before
    machine_before=$(machine_ticks)
    "$PACE" --addr "127.0.0.1:$port" --rate "$rate" --connections "$connections" \
        --warmup "$LATENCY_WARMUP" --duration "$LATENCY_DURATION" --paths "$dir/paths.txt" --host brand.link \
        -H 'User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1' \
        -H 'Accept-Language: en-US,en;q=0.9' -H 'Referer: https://t.co/' \
        >"$dir/pace.json" 2>"$dir/pace.err" || { cat "$dir/pace.err" >&2; die "the latency probe failed"; }
    printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$system" "$rate" "$label" "$round" "$connections" \
        "$(busy_percent "$machine_before" "$(machine_ticks)")" >"$dir/latency.meta"
    if [[ $system == nginx-log ]]; then
        stop_nginx "$dir"
    else
        finish_clickstream "$system" "$dir" "$ticks"
    fi
    python3 - "$dir/pace.json" <<'EOF' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print(f"      {r['ok']:,} answered, {r['errors']} errors, p50 {r['p50_us'] / 1000:.2f} ms, "
      f"p99 {r['p99_us'] / 1000:.2f} ms, p99.9 {r['p999_us'] / 1000:.2f} ms, "
      f"probe late p99 {r['send_lag_p99_us'] / 1000:.2f} ms; p99 with the warm-up {r['p99_all_us'] / 1000:.2f} ms")
EOF
}

run_latency_step() {
    local cs_peak ng_peak cs_half ng_half round
    cs_peak=$(median_rps clickstream-webhook)
    ng_peak=$(median_rps nginx-log)
    cs_half=$((cs_peak / 2))
    ng_half=$((ng_peak / 2))
    ((cs_half > 0 && ng_half > 0)) || die "no peak measured for the latency step"
    for ((round = 1; round <= LATENCY_ROUNDS; round++)); do
        run_latency clickstream-webhook "$cs_half" clickstream-webhook-half-own "$round"
        run_latency nginx-log "$ng_half" nginx-log-half-own "$round"
        # The same offered load for both: half of the lower peak.
        if ((cs_half < ng_half)); then
            run_latency nginx-log "$cs_half" nginx-log-half-other "$round"
        elif ((ng_half < cs_half)); then
            run_latency clickstream-webhook "$ng_half" clickstream-webhook-half-other "$round"
        fi
        if [[ -n $LATENCY_RATE ]]; then
            run_latency clickstream-webhook "$LATENCY_RATE" clickstream-webhook-fixed "$round"
            run_latency nginx-log "$LATENCY_RATE" nginx-log-fixed "$round"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Report

# clickstream_version: the commit, "-dirty" when tracked files other than the results differ.
clickstream_version() {
    local commit
    commit=$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    if [[ -n $(cd "$REPO_DIR" && git status --porcelain --untracked-files=no -- . ':!benches/compare/results' 2>/dev/null) ]]; then
        commit+="-dirty"
    fi
    echo "$commit"
}

describe_machine() {
    local model load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" 'BEGIN { exit !(l >= 1) }'; then
        warn "load average is $load before the run: other work on this machine will skew the results"
    fi
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
    {
        printf 'cpus=%s\n' "$(nproc)"
        printf 'cpu_model=%s\n' "${model:-unknown}"
        printf 'kernel=%s\n' "$(uname -sr)"
        printf 'load_before=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf 'nginx=%s\n' "$("$NGINX" -v 2>&1 | sed 's|.*/||')"
        printf 'wrk=%s\n' "$(wrk -v 2>&1 | head -n 1 | awk '{print $2}' | sed 's|^debian/||')"
        if ((RUN_HTTPS)); then printf 'openssl=%s\n' "$(openssl version | awk '{print $2}')"; fi
        if [[ -n $HTTPS_SKIPPED ]]; then printf 'https_skipped=%s\n' "$HTTPS_SKIPPED"; fi
        printf 'clickstream=%s\n' "$(clickstream_version)"
    } >"$WORK_DIR/machine.env"
}

write_report() {
    printf 'load_after=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK_DIR/machine.env"
    mkdir -p "$RESULTS_DIR"
    python3 "$HELPERS/report.py" \
        --runs "$WORK_DIR/runs" --machine "$WORK_DIR/machine.env" \
        --command "$COMMAND_LINE" \
        --settings "duration=$DURATION rounds=$ROUNDS connections=$CONNECTIONS threads=$THREADS links=$LINKS latency_duration=$LATENCY_DURATION latency_warmup=$LATENCY_WARMUP latency_rounds=$LATENCY_ROUNDS latency_connections=$LATENCY_CONNECTIONS latency_rate=${LATENCY_RATE:-none} nginx_workers=$NGINX_WORKERS order=$(IFS=,; echo "${SYSTEMS[*]}")" \
        --md "$RESULTS_DIR/latest.md" --svg "$RESULTS_DIR/latest.svg"
}

main() {
    parse_args "$@"
    trap cleanup EXIT
    trap on_signal INT TERM
    ensure_tools
    build_clickstream
    check_ports_free
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/clickstream-compare.XXXXXX")
    check_free_space
    snapshot_binary
    generate_links
    if ((RUN_HTTPS)); then
        generate_certificate
    fi
    describe_machine
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        run_round "$round"
    done
    if ((RUN_LATENCY)); then
        run_latency_step
    fi
    write_report
}

main "$@"
