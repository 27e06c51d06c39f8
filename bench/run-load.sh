#!/usr/bin/env bash
# Runs the same scimload phases against scimflare (plan-only, durable bbolt
# state on local disk) and against the in-memory ceiling server, both on
# loopback, and prints them side by side with the ratio scimflare/ceiling.
# Also measures scimflare's RSS after each phase and its start-up time to a
# 200 from /healthz with the data loaded (a restart on the same state file).
#
#   bench/run-load.sh          full size (100k users, 2k groups, 1M memberships)
#   bench/run-load.sh smoke    CI size, a few seconds; exit 1 on any failed
#                              request or when a phase falls below its floor
#
# Sizes from the environment: USERS, GROUPS (or LOAD_GROUPS: an interactive
# bash will not pass GROUPS on, it is a bash variable), MEMBERSHIPS,
# CONCURRENCY, CHUNK, CHURN, LOOKUPS, PHASES. Floors (smoke): MIN_OPS,
# MIN_RATIO, MAX_STARTUP_MS. SETTLE: seconds to wait after the restart before
# reading RSS again. KEEP=1 keeps the work directory.
# BACKEND=postgres runs scimflare on PostgreSQL instead of bbolt: a cluster
# of its own (initdb, pg_ctl from $PG_BIN or the Debian install; as the
# "postgres" user when run as root), with PostgreSQL's defaults (fsync and
# synchronous_commit on), on loopback TCP.
# Everything listens on 127.0.0.1 and every process started here is stopped
# (by its pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
groups_env=${LOAD_GROUPS:-$(printenv GROUPS || true)}
case "$mode" in
smoke)
	users=${USERS:-300} groups=${groups_env:-20} memberships=${MEMBERSHIPS:-3000}
	churn=${CHURN:-600} lookups=${LOOKUPS:-1500} run_timeout=2m
	# Generous: about a tenth of what a quiet 2-core machine with a
	# ~8 ms fdatasync does. Writes are fsync-bound, lookups CPU-bound.
	min_ops=${MIN_OPS:-import=50,churn=50,lookup=170}
	min_ratio=${MIN_RATIO:-lookup=0.05}
	max_startup_ms=${MAX_STARTUP_MS:-10000} settle=${SETTLE:-1}
	;;
full)
	users=${USERS:-100000} groups=${groups_env:-2000} memberships=${MEMBERSHIPS:-1000000}
	churn=${CHURN:-20000} lookups=${LOOKUPS:-30000} run_timeout=40m
	min_ops=${MIN_OPS:-} min_ratio=${MIN_RATIO:-} max_startup_ms=${MAX_STARTUP_MS:-} settle=${SETTLE:-10}
	;;
*)
	echo "usage: $0 [full|smoke]" >&2
	exit 2
	;;
esac
concurrency=${CONCURRENCY:-8} chunk=${CHUNK:-100} phases=${PHASES:-import,churn,lookup}
backend=${BACKEND:-bolt}
case "$backend" in
bolt | postgres) ;;
*)
	echo "BACKEND must be bolt or postgres, got $backend" >&2
	exit 2
	;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/loadbench.XXXXXX")
pids=()
pg_dir=""
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [ -n "$pg_dir" ]; then
		pg pg_ctl -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$pg_dir"
	fi
	if [ "${KEEP:-}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }

# wait_for CMD...: retries CMD every 20 ms for at most 60 s.
wait_for() {
	local deadline=$((SECONDS + 60))
	until "$@"; do
		if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
		sleep 0.02
	done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1/healthz")" = 200 ]; }

# pg CMD ARGS...: one of PostgreSQL's programs, as the postgres user when
# this script runs as root (initdb refuses root).
pg() {
	local cmd=$1
	shift
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$pg_bin/$cmd" "$@"
	else
		"$pg_bin/$cmd" "$@"
	fi
}
# start_postgres: a fresh cluster in its own directory on a free loopback
# port; sets pg_dir and pg_dsn.
start_postgres() {
	pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
	if [ -z "$pg_bin" ] && command -v pg_ctl >/dev/null; then pg_bin=$(dirname "$(command -v pg_ctl)"); fi
	[ -x "$pg_bin/pg_ctl" ] || { echo "BACKEND=postgres: no pg_ctl (set PG_BIN)" >&2; exit 1; }
	pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/loadbench-pg.XXXXXX")
	if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; fi
	pg initdb -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$pg_dir/initdb.log" 2>&1 ||
		{ cat "$pg_dir/initdb.log" >&2; exit 1; }
	local port try
	for try in 1 2 3; do
		port=$((20000 + RANDOM % 30000))
		if pg pg_ctl -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
			-o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null; then
			pg_dsn="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			return 0
		fi
	done
	cat "$pg_dir/server.log" >&2
	exit 1
}

say "build"
mkdir -p "$work/bin"
# The daemon binary is called "sut" (system under test) so that nobody's
# cleanup of their own scimflare processes by name stops it mid-run.
go build -o "$work/bin/sut" ./cmd/scimflare
go build -o "$work/bin/scimload" ./cmd/scimload
go build -o "$work/bin/ceiling" ./bench/ceiling

load() { # load NAME URL TOKEN PID
	local rc=0
	SCIMLOAD_TOKEN=$3 "$work/bin/scimload" -url "$2" -json -rss-pid "$4" \
		-users "$users" -groups "$groups" -memberships "$memberships" -chunk "$chunk" \
		-concurrency "$concurrency" -churn "$churn" -lookups "$lookups" -phases "$phases" \
		-timeout "$run_timeout" >"$work/$1.json" || rc=$?
	# 3 = the run completed with failed requests: the report shows them.
	if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
		echo "scimload against $1 failed (exit $rc)" >&2
		exit 1
	fi
}

say "ceiling: $users users, $groups groups, $memberships memberships, concurrency $concurrency"
"$work/bin/ceiling" -listen 127.0.0.1:0 >"$work/ceiling.url" 2>"$work/ceiling.log" &
ceiling_pid=$!
pids+=("$ceiling_pid")
wait_for test -s "$work/ceiling.url" || { echo "ceiling did not start:" >&2; cat "$work/ceiling.log" >&2; exit 1; }
load ceiling "$(head -1 "$work/ceiling.url")" ceiling "$ceiling_pid"
kill -TERM "$ceiling_pid"
wait "$ceiling_pid" || true

token="scimload-$RANDOM$RANDOM$RANDOM-token"
# The daemon runs plan-only: it calls no Cloudflare API. Its debounce of
# 30 s puts the full run that an import's touches collapse into (cap
# 6 x debounce = 3 min after the first touch) after the load has ended,
# so the phases measure the SCIM path every run alike; with 10 s the cap
# fell inside the lookup phase in some runs and not in others, depending
# on a few seconds of import time. The scheduled run (every 5 min) does
# not come due either. A full run's own cost is measured on its own
# (BENCHMARKS.md, "Full runs").
write_config() { # write_config LISTEN
	cat >"$work/config.yaml" <<EOF
server:
  listen: "$1"
  scim_base_path: /scim/v2
admin:
  socket: $work/scimflare.sock
state:
  backend: $backend
  path: $work/state.db
  dsn_env: SCIMFLARE_POSTGRES_DSN
scim:
  token_env: SCIMFLARE_SCIM_TOKEN
  max_body_bytes: 1048576
cloudflare:
  api_token_env: CLOUDFLARE_API_TOKEN
  base_url: http://127.0.0.1:9/client/v4
sync:
  schedule: "@every 5m"
  debounce: 30s
accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
mappings:
  - group: load-group-00000
    account: prod
    roles: [Workers Platform Read]
  - group: load-group-00001
    account: prod
    roles: [Workers Platform Read]
EOF
}
start_scimflare() { # start_scimflare LOG; sets sf_pid
	# No CLOUDFLARE_API_TOKEN: plan-only, scimflare makes no Cloudflare call.
	env -u CLOUDFLARE_API_TOKEN SCIMFLARE_SCIM_TOKEN="$token" SCIMFLARE_POSTGRES_DSN="${pg_dsn:-}" \
		"$work/bin/sut" serve --config "$work/config.yaml" >>"$1" 2>&1 &
	sf_pid=$!
	pids+=("$sf_pid")
}
stop_scimflare() {
	kill -TERM "$sf_pid"
	wait "$sf_pid" || true
}

if [ "$backend" = postgres ]; then
	say "PostgreSQL for scimflare's state"
	start_postgres
fi
say "scimflare ($backend): $users users, $groups groups, $memberships memberships, concurrency $concurrency"
write_config "127.0.0.1:0"
start_scimflare "$work/scimflare.log"
wait_for grep -qs '"msg":"scimflare serving"' "$work/scimflare.log" || { cat "$work/scimflare.log" >&2; exit 1; }
addr=$(grep -o '"listen":"[^"]*"' "$work/scimflare.log" | head -1 | cut -d'"' -f4)
load scimflare "http://$addr/scim/v2" "$token" "$sf_pid"
stop_scimflare

# state_size: the bbolt file, or the PostgreSQL cluster's data directory.
state_size() {
	if [ "$backend" = postgres ]; then
		echo "PostgreSQL data directory $(du -sh "$pg_dir/data" | cut -f1)"
	else
		echo "state file $(du -h "$work/state.db" | cut -f1)"
	fi
}
say "scimflare restart on the same state ($(state_size))"
write_config "$addr"
t0=$(now_ms)
start_scimflare "$work/scimflare-restart.log"
wait_for healthy "$addr" || { echo "scimflare did not become healthy:" >&2; cat "$work/scimflare-restart.log" >&2; exit 1; }
startup_ms=$(($(now_ms) - t0))
rss_mib() { awk -v k="$1:" '$1 == k {printf "%d", $2 / 1024}' "/proc/$sf_pid/status"; }
rss_start="$(rss_mib VmRSS) MiB (anonymous $(rss_mib RssAnon) MiB)"
# The restarted daemon plans every user once; RSS after that settles.
sleep "$settle"
rss_settled="$(rss_mib VmRSS) MiB (anonymous $(rss_mib RssAnon) MiB)"
stop_scimflare

echo
echo "scimflare ($backend) / ceiling, $users users, $groups groups, $memberships memberships, chunk $chunk, concurrency $concurrency"
report_args=()
[ -n "$min_ops" ] && report_args+=(-min-ops "$min_ops")
[ -n "$min_ratio" ] && report_args+=(-min-ratio "$min_ratio")
rc=0
"$work/bin/scimload" report "${report_args[@]}" "scimflare=$work/scimflare.json" "ceiling=$work/ceiling.json" || rc=$?
echo "scimflare start-up to /healthz with the data loaded: ${startup_ms} ms; $(state_size)"
echo "scimflare RSS after restart: ${rss_start} at /healthz, ${rss_settled} ${settle} s later"
if [ -n "$max_startup_ms" ] && [ "$startup_ms" -gt "$max_startup_ms" ]; then
	echo "FAIL: start-up took ${startup_ms} ms, above the ceiling of ${max_startup_ms} ms"
	rc=1
fi
exit "$rc"
