#!/usr/bin/env bash
# Peer: feedsieve, for the peer harness in ../shared/bench (run_bench.py). One full
# fetch+parse+dedup+store pass is `feedsieve run --once` on a config listing every URL.
#   peer_feedsieve.sh run URLS_FILE STATE_DIR   one pass into STATE_DIR/data (sled)
#   peer_feedsieve.sh count STATE_DIR           articles stored (duplicates dropped go to stderr)
#   peer_feedsieve.sh version
# The binary is $FEEDSIEVE_BIN (bench/peers.sh sets it to the release build).
# Settings match the peers': 16 fetches in flight, all of them allowed to the one loopback host
# (peers do not limit per host), no gap between requests. Dedup is fully on.
set -euo pipefail
bin=${FEEDSIEVE_BIN:?set FEEDSIEVE_BIN to the feedsieve binary}
cmd=${1:?usage: $0 run URLS STATE | count STATE | version}
case "$cmd" in
version)
    "$bin" --version ;;
count)
    state=$(readlink -f "${2:?STATE}")
    [ -f "$state/feedsieve.toml" ] || { echo 0; exit 0; }
    dups=$("$bin" --config "$state/feedsieve.toml" duplicates | wc -l)
    echo "duplicates dropped: $dups" >&2
    "$bin" --config "$state/feedsieve.toml" articles | wc -l ;;
run)
    urls=${2:?URLS}; state=${3:?STATE}
    mkdir -p "$state"
    state=$(readlink -f "$state")
    config="$state/feedsieve.toml"
    if [ ! -f "$config" ]; then
        {
            printf 'data_dir = "data"\n[api]\nlisten = "127.0.0.1:0"\n'
            printf '[poll]\nconcurrency = 16\nper_host = 16\nhost_gap = "0s"\n'
            while IFS= read -r url; do
                [ -n "$url" ] && printf '[[feeds]]\nurl = "%s"\n' "$url"
            done < "$urls"
        } > "$config"
    fi
    exec "$bin" --config "$config" run --once ;;
*)
    echo "unknown command $cmd" >&2; exit 2 ;;
esac
