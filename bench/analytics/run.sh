#!/usr/bin/env bash
# bench/analytics/run.sh - Waymark, ClickHouse and DuckDB side by side on the
# same generated track events (the `analytics` section of bench/run-all).
# Markdown tables on stdout, progress on stderr.
#
#   BUILD=build bench/analytics/run.sh
#   BENCH_ANALYTICS_SCALE=small bench/analytics/run.sh      quick run
#
# Knobs (environment):
#   BENCH_ANALYTICS_SCALE   10m (default): `waymark gen --users 304000 --days 30
#                           --seed 7`, ~10.1 M track events; 100m: 3,040,000 users,
#                           ~100 M; small: 30,000 users, ~1 M.
#   BENCH_ANALYTICS_ENGINES engines to run (default "waymark clickhouse duckdb").
#   BENCH_ANALYTICS_RUNS    timed runs per query after 1 warm-up (default 3).
#   BENCH_ANALYTICS_WAYMARK_INPUT
#                           rows (default): Waymark imports waymark.ndjson, the very
#                           rows the SQL engines load, each with only its
#                           distinct_id (one customer per distinct_id, no merges),
#                           so the answers can agree exactly; gen: Waymark imports
#                           the generator's whole file (profiles, $SignUp, $BindID:
#                           identities resolved, user counts differ).
#   TMPDIR                  where everything goes (default /tmp); removed at the end,
#                           also on Ctrl-C. 10m needs ~6 GB (~10 GB with Waymark), 100m
#                           ~10 GB without Waymark, ~50 GB with it (rows file + data dir).
#
# Data: prep.mjs keeps the track events of the generator's output (read once
# from a pipe, never stored) as user, event, time_ms, channel, fund_code with
# user = dense rank of distinct_id (the anchors' `user = distinct_id`, not
# identity-resolved) and writes them as events.tsv (ClickHouse, DuckDB) and as
# waymark.ndjson (Waymark). The SQL per engine is in sql/clickhouse and
# sql/duckdb, Waymark's requests in queries/ (docs/analytics.md). Timings: 1
# warm-up then RUNS timed runs, min / median ms: ClickHouse = the server's
# query_duration_ms (system.query_log), DuckDB = in-process time of the query
# and its rows (node duck.mjs), Waymark = the whole `waymark query` command (and
# the answer's elapsed_ms where it has one). Peak RSS: ClickHouse = the query's
# memory_usage in system.query_log (the server's tracker, not its RSS); DuckDB =
# the node process's VmHWM, reset before each run (so the cached table is in
# it); Waymark = `/usr/bin/time -f %M` of the command. ClickHouse ÷ Waymark =
# median / median (above 1: Waymark is faster). One engine at a time: the
# ClickHouse server runs only during its own part.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
BUILD=${BUILD:-build}
BIN=$BUILD/waymark
SCALE=${BENCH_ANALYTICS_SCALE:-10m}
ENGINES=${BENCH_ANALYTICS_ENGINES:-waymark clickhouse duckdb}
RUNS=${BENCH_ANALYTICS_RUNS:-3}
WM_INPUT=${BENCH_ANALYTICS_WAYMARK_INPUT:-rows}
QUERIES="funnel retention paths events"
GEN_DAYS=30
GEN_SEED=7

case "$SCALE" in
    small) USERS=30000 ;;
    10m) USERS=304000 ;;
    100m) USERS=3040000 ;;
    *) echo "bench/analytics/run.sh: BENCH_ANALYTICS_SCALE must be small, 10m or 100m" >&2; exit 2 ;;
esac
case "$WM_INPUT" in
    rows | gen) ;;
    *) echo "bench/analytics/run.sh: BENCH_ANALYTICS_WAYMARK_INPUT must be rows or gen" >&2; exit 2 ;;
esac
engine() { case " $ENGINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
note() { printf '[bench %s] analytics: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$BIN" ]; then
    echo "bench/analytics/run.sh: $BIN is not built (make BUILD=$BUILD)" >&2
    exit 2
fi
if ! scripts/bootstrap-bench >&2; then
    echo "bench/analytics/run.sh: scripts/bootstrap-bench failed; ClickHouse / DuckDB missing" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wm-analytics.XXXXXX") || exit 1
CH_PID=
stop_clickhouse() {
    if [ -n "$CH_PID" ] && kill -0 "$CH_PID" 2>/dev/null; then
        kill -TERM "$CH_PID" 2>/dev/null
        local i
        for i in $(seq 1 100); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CH_PID" 2>/dev/null
        wait "$CH_PID" 2>/dev/null
    fi
    CH_PID=
}
cleanup() {
    stop_clickhouse
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/res"
# results: $WORK/res/ENGINE-QUERY.{tsv,ms,rss,err}; ENGINE.load = "seconds bytes"

# min and median of the numbers in a file (one per line), or n/a
minmed() {
    [ -s "$1" ] || { echo "n/a"; return; }
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f / %.0f", v[1], m }'
}
median() {
    [ -s "$1" ] || { echo ""; return; }
    sort -g "$1" | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
maxof() { if [ -s "$1" ]; then sort -g "$1" | tail -1; fi; }
na() { if [ -n "$1" ]; then echo "$1"; else echo n/a; fi; }
ms_now() { date +%s%N | cut -c1-13; }

# ---------------------------------------------------------------- data

waymark_has() {   # does this build have the command at all?
    ! "$BIN" "$1" --help 2>&1 | grep -q "unknown command"
}
WM_RUN=
if engine waymark; then
    if waymark_has query; then
        WM_RUN=1
    else
        note "Waymark: this build has no 'waymark query'; its columns are n/a (no import)"
    fi
fi
PREP_FLAG=
[ -n "$WM_RUN" ] && [ "$WM_INPUT" = rows ] || PREP_FLAG=--no-waymark

note "generating $USERS users x $GEN_DAYS days (seed $GEN_SEED) and writing the rows"
gen_log=$WORK/gen.log
if [ "$WM_INPUT" = gen ] && [ -n "$WM_RUN" ]; then
    "$BIN" gen --users "$USERS" --days "$GEN_DAYS" --seed "$GEN_SEED" 2>"$gen_log" |
        tee "$WORK/gen.ndjson" | node "$here/prep.mjs" /dev/stdin "$WORK" $PREP_FLAG || exit 1
    WM_FILE=$WORK/gen.ndjson
else
    "$BIN" gen --users "$USERS" --days "$GEN_DAYS" --seed "$GEN_SEED" 2>"$gen_log" |
        node "$here/prep.mjs" /dev/stdin "$WORK" $PREP_FLAG || exit 1
    WM_FILE=$WORK/waymark.ndjson
fi
[ -s "$WORK/events.tsv" ] || { cat "$gen_log" >&2; exit 1; }
read -r ROWS N_USERS <<<"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows"], d["users"])' "$WORK/prep.json")"
note "$ROWS track events of $N_USERS distinct_ids"

# ---------------------------------------------------------------- ClickHouse

CH_PORT=
chq() { clickhouse-client --host 127.0.0.1 --port "$CH_PORT" "$@"; }

start_clickhouse() {
    local d=$WORK/ch
    mkdir -p "$d/data"
    CH_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local http_port
    http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles><default>
        <max_memory_usage>16000000000</max_memory_usage>
        <max_threads>$(nproc)</max_threads>
        <log_queries>1</log_queries>
    </default></profiles>
    <users><default>
        <password></password>
        <networks><ip>127.0.0.1</ip></networks>
        <profile>default</profile><quota>default</quota>
    </default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
    cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$d/server.log</log><errorlog>$d/server.err.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$CH_PORT</tcp_port>
    <http_port>$http_port</http_port>
    <max_concurrent_queries>10</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/data/tmp/</tmp_path>
    <user_files_path>$d/data/user_files/</user_files_path>
    <format_schema_path>$d/data/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <query_log><database>system</database><table>query_log</table>
        <flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>
</yandex>
EOF
    /usr/sbin/clickhouse-server --config-file="$d/config.xml" >"$d/stdout.log" 2>&1 &
    CH_PID=$!
    local i
    for i in $(seq 1 300); do
        chq -q 'SELECT 1' >/dev/null 2>&1 && return 0
        kill -0 "$CH_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench/analytics/run.sh: clickhouse-server did not start:" >&2
    tail -20 "$d/server.err.log" "$d/stdout.log" >&2
    stop_clickhouse
    return 1
}

run_clickhouse() {
    note "ClickHouse: starting a private server"
    start_clickhouse || return 1
    CH_VERSION=$(chq -q 'SELECT version()')
    chq --multiquery <"$here/sql/clickhouse/schema.sql" || return 1
    note "ClickHouse: loading"
    local t0 t1
    t0=$(ms_now)
    chq -q 'INSERT INTO ev FORMAT TabSeparated' <"$WORK/events.tsv" || return 1
    chq -q 'OPTIMIZE TABLE ev FINAL' || return 1
    t1=$(ms_now)
    local parts bytes n
    read -r parts bytes n <<<"$(chq -q "SELECT count(), sum(bytes_on_disk), sum(rows) FROM system.parts
                                        WHERE database = 'default' AND table = 'ev' AND active" --format TSV)"
    note "ClickHouse: $n rows in $parts part(s), $bytes bytes, $(( t1 - t0 )) ms"
    echo "$(( t1 - t0 )) $bytes" >"$WORK/res/clickhouse.load"
    local q i tag
    for q in $QUERIES; do
        note "ClickHouse: $q"
        tag=wm$$-$RANDOM
        for i in $(seq 0 "$RUNS"); do
            chq --query_id "$tag-$q-$i" --format TSV <"$here/sql/clickhouse/$q.sql" \
                >"$WORK/res/clickhouse-$q.tsv" 2>"$WORK/res/clickhouse-$q.err" || {
                note "ClickHouse: $q failed: $(head -c 300 "$WORK/res/clickhouse-$q.err")"
                rm -f "$WORK/res/clickhouse-$q.tsv"
                break
            }
        done
        [ -f "$WORK/res/clickhouse-$q.tsv" ] || continue
        chq -q 'SYSTEM FLUSH LOGS'
        chq --format TSV -q "SELECT query_duration_ms, memory_usage FROM system.query_log
                             WHERE type = 2 AND query_id LIKE '$tag-$q-%' AND query_id != '$tag-$q-0'" >"$WORK/ch-log"
        cut -f1 "$WORK/ch-log" >"$WORK/res/clickhouse-$q.ms"
        cut -f2 "$WORK/ch-log" | awk '{ printf "%.0f\n", $1 / 1048576 }' >"$WORK/res/clickhouse-$q.rss"
    done
    stop_clickhouse
    rm -rf "$WORK/ch"
}

# ---------------------------------------------------------------- DuckDB

run_duckdb() {
    local db=$WORK/duck.duckdb out q
    DUCK_VERSION=$(node -e 'console.log(require(process.argv[1] + "/node_modules/@duckdb/node-api/package.json").version)' "$here")
    note "DuckDB: loading"
    out=$(node "$here/duck.mjs" load "$db" "$WORK/events.tsv" "$here/sql/duckdb/schema.sql") || return 1
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["seconds"]*1000), d["file_bytes"], d["used_bytes"])' \
        "$out" >"$WORK/res/duckdb.load"
    for q in $QUERIES; do
        note "DuckDB: $q"
        out=$(node "$here/duck.mjs" query "$db" "$here/sql/duckdb/$q.sql" "$WORK/res/duckdb-$q.tsv" "$RUNS" \
              2>"$WORK/res/duckdb-$q.err") || {
            note "DuckDB: $q failed: $(head -c 300 "$WORK/res/duckdb-$q.err")"
            rm -f "$WORK/res/duckdb-$q.tsv"
            continue
        }
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("\n".join(map(str, d["ms"]))); print(d["rss_mb"], file=open(sys.argv[2], "w"))' \
            "$out" "$WORK/res/duckdb-$q.rss" >"$WORK/res/duckdb-$q.ms"
    done
    rm -f "$db" "$db.wal"
}

# ---------------------------------------------------------------- Waymark

run_waymark() {
    local dir=$WORK/wm-data q i t0 t1 e
    note "Waymark: import $(basename "$WM_FILE")"
    t0=$(ms_now)
    if ! /usr/bin/time -f %M -o "$WORK/wm-import.rss" "$BIN" import --quiet --data "$dir" --fsync never "$WM_FILE" \
            >"$WORK/wm-import.out" 2>&1; then
        note "Waymark: import failed: $(tail -3 "$WORK/wm-import.out")"
        return 0
    fi
    note "Waymark: $(tail -1 "$WORK/wm-import.out")"
    note "Waymark: compact"
    if ! "$BIN" compact --data "$dir" >"$WORK/wm-compact.out" 2>&1; then
        note "Waymark: compact failed: $(tail -3 "$WORK/wm-compact.out") (queries read the log tail)"
    fi
    t1=$(ms_now)
    local bytes
    if [ -d "$dir/analytics" ]; then bytes=$(du -sb "$dir/analytics" | cut -f1); else bytes=; fi
    echo "$(( t1 - t0 )) ${bytes:-n/a} $(du -sb "$dir" | cut -f1)" >"$WORK/res/waymark.load"
    # the queries go to a running server, as ClickHouse's do: its parts stay
    # mapped between queries (a one-shot `waymark query --data` opens the
    # whole engine and maps the parts afresh every time)
    local port pid key=bench-analytics-key
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$BIN" serve --listen "127.0.0.1:$port" --data "$dir" --admin-key "$key" --fsync never \
        >"$WORK/wm-serve.log" 2>&1 &
    pid=$!
    for i in $(seq 1 600); do
        python3 -c 'import sys, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/readyz" % sys.argv[1], timeout=1)' \
            "$port" 2>/dev/null && break
        sleep 0.1
    done
    for q in $QUERIES; do
        note "Waymark: $q"
        : >"$WORK/res/waymark-$q.ms"
        : >"$WORK/res/waymark-$q.rss"
        : >"$WORK/res/waymark-$q.elapsed"
        for i in $(seq 0 "$RUNS"); do
            t0=$(ms_now)
            if ! "$BIN" query "$q" "$here/queries/$q.json" --url "http://127.0.0.1:$port" --key "$key" \
                    --format json >"$WORK/wm-q.json" 2>"$WORK/res/waymark-$q.err"; then
                note "Waymark: $q failed: $(head -c 300 "$WORK/res/waymark-$q.err")"
                rm -f "$WORK/res/waymark-$q.ms" "$WORK/res/waymark-$q.tsv"
                break
            fi
            t1=$(ms_now)
            if ! e=$(python3 "$here/canon.py" waymark "$q" "$WORK/wm-q.json" "$WORK/res/waymark-$q.tsv" \
                     2>"$WORK/res/waymark-$q.err"); then
                note "Waymark: $q answer not understood: $(tail -1 "$WORK/res/waymark-$q.err")"
                rm -f "$WORK/res/waymark-$q.ms" "$WORK/res/waymark-$q.tsv"
                break
            fi
            if [ "$i" -gt 0 ]; then
                echo "$(( t1 - t0 ))" >>"$WORK/res/waymark-$q.ms"
                # the server's peak resident memory so far (VmHWM), MB
                awk '/^VmHWM/ { printf "%.0f\n", $2 / 1024 }' "/proc/$pid/status" >>"$WORK/res/waymark-$q.rss"
                [ -n "$e" ] && echo "$e" >>"$WORK/res/waymark-$q.elapsed"
            fi
        done
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$dir"
}

# ---------------------------------------------------------------- run

CH_VERSION="(not run)"
DUCK_VERSION="(not run)"
if engine clickhouse; then run_clickhouse || { note "ClickHouse: failed"; stop_clickhouse; }; fi
if engine duckdb; then run_duckdb || note "DuckDB: failed"; fi
rm -f "$WORK/events.tsv"
if [ -n "$WM_RUN" ]; then run_waymark; fi
rm -f "$WORK/waymark.ndjson" "$WORK/gen.ndjson"

# ---------------------------------------------------------------- tables

R=$WORK/res
echo
echo "## Analytics side by side (\`waymark gen --users $USERS --days $GEN_DAYS --seed $GEN_SEED\`, $ROWS track events)"
echo
echo "The generator's track events, loaded as user, event, time_ms, channel, fund_code (user = dense rank of"
echo "distinct_id, not identity-resolved): ClickHouse $CH_VERSION (Debian \`clickhouse-server\`) MergeTree ORDER BY"
echo "(user, time_ms) merged to one part; DuckDB $DUCK_VERSION (npm \`@duckdb/node-api\`) native table, 2 threads;"
if [ "$WM_INPUT" = rows ]; then
    echo "Waymark \`import --fsync never\` of the same rows as Sensors track records (distinct_id only, so no identity"
    echo "merges) then \`compact\`, queried with \`waymark query KIND bench/analytics/queries/KIND.json\`."
else
    echo "Waymark \`import --fsync never\` of the generator's whole file (identities resolved: anonymous visitors merged"
    echo "into their logins, so user counts differ) then \`compact\`, queried with \`waymark query\`."
fi
echo "1 warm-up + $RUNS timed runs, min / median ms. ClickHouse: server query_duration_ms; DuckDB: in-process query"
echo "time; Waymark: \`waymark query --url\` against a running \`waymark serve\` (the engine's elapsed_ms in brackets). ÷ = median /"
echo "Waymark's median (above 1: Waymark faster). Peak memory MB: Waymark server VmHWM / ClickHouse query"
echo "memory_usage / DuckDB process VmHWM (reset per run, the cached table included)."
echo
echo "| query | Waymark min / median | ClickHouse min / median | DuckDB min / median | ClickHouse ÷ Waymark | DuckDB ÷ Waymark | peak MB Waymark / ClickHouse / DuckDB |"
echo "|---|---|---|---|---|---|---|"
for q in $QUERIES; do
    wm=$(minmed "$R/waymark-$q.ms" 2>/dev/null)
    [ -s "$R/waymark-$q.elapsed" ] && wm="$wm [$(minmed "$R/waymark-$q.elapsed")]"
    ch=$(minmed "$R/clickhouse-$q.ms" 2>/dev/null)
    du=$(minmed "$R/duckdb-$q.ms" 2>/dev/null)
    wmm=$(median "$R/waymark-$q.ms" 2>/dev/null)
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
    chr=$(ratio "$(median "$R/clickhouse-$q.ms" 2>/dev/null)" "$wmm")
    dur=$(ratio "$(median "$R/duckdb-$q.ms" 2>/dev/null)" "$wmm")
    rss="$(na "$(maxof "$R/waymark-$q.rss")") / $(na "$(maxof "$R/clickhouse-$q.rss")") / $(na "$(maxof "$R/duckdb-$q.rss")")"
    echo "| $q | $wm | $ch | $du | $chr | $dur | $rss |"
done

echo
echo "| engine | load s | bytes on disk | bytes/event |"
echo "|---|---|---|---|"
load_row() {   # name ms bytes [note]
    awk -v n="$1" -v ms="$2" -v b="$3" -v rows="$ROWS" -v note="${4:-}" 'BEGIN {
        s = ms == "" ? "n/a" : sprintf("%.1f", ms / 1000)
        if (b ~ /^[0-9]+$/) { bb = sprintf("%.0f", b); per = sprintf("%.1f", b / rows) } else { bb = "n/a"; per = "n/a" }
        printf "| %s | %s | %s%s | %s |\n", n, s, bb, note, per }'
}
if [ -s "$R/waymark.load" ]; then
    read -r ms b all <"$R/waymark.load"
    load_row "Waymark (import + compact)" "$ms" "$b" " (analytics/ parts; whole data dir $all)"
else
    load_row Waymark "" ""
fi
if [ -s "$R/clickhouse.load" ]; then
    read -r ms b <"$R/clickhouse.load"
    load_row "ClickHouse (INSERT TSV + OPTIMIZE FINAL)" "$ms" "$b" " (active parts)"
else
    load_row ClickHouse "" ""
fi
if [ -s "$R/duckdb.load" ]; then
    read -r ms b used <"$R/duckdb.load"
    load_row "DuckDB (INSERT … ORDER BY + CHECKPOINT)" "$ms" "$used" " in use (file $b)"
else
    load_row DuckDB "" ""
fi

echo
echo "| query | ClickHouse vs DuckDB | Waymark vs ClickHouse / DuckDB | answer |"
echo "|---|---|---|---|"
for q in $QUERIES; do
    a=$R/clickhouse-$q.tsv b=$R/duckdb-$q.tsv w=$R/waymark-$q.tsv
    if [ -f "$a" ] && [ -f "$b" ]; then
        cd_=$(python3 "$here/canon.py" diff "$a" "$b")
        case "$cd_" in agree) ;; *) cd_="**DIFFERS** ${cd_#differs }"; note "ClickHouse and DuckDB DIFFER on $q: $cd_" ;; esac
    else
        cd_=n/a
    fi
    ref=$a; [ -f "$ref" ] || ref=$b
    if [ -f "$w" ] && [ -f "$ref" ]; then wd=$(python3 "$here/canon.py" diff "$w" "$ref"); else wd=n/a; fi
    if [ -f "$ref" ]; then ans=$(python3 "$here/canon.py" show "$q" "$ref"); elif [ -f "$w" ]; then
        ans=$(python3 "$here/canon.py" show "$q" "$w"); else ans=n/a; fi
    echo "| $q | $cd_ | $wd | $ans |"
done
if [ -f "$R/clickhouse-paths.tsv" ] || [ -f "$R/duckdb-paths.tsv" ]; then
    ref=$R/clickhouse-paths.tsv; [ -f "$ref" ] || ref=$R/duckdb-paths.tsv
    echo
    echo "Top paths of depth 3 after the first \`\$AppStart\`: $(awk -F'\t' '{ printf "%s%s (%s)", (NR > 1 ? "; " : ""), $1, $2 }' "$ref")."
fi
