#!/usr/bin/env bash
# feedsieve beside the feed tools people use, on one workload, in one run.
#
#   bench/peers.sh [--install] [--feeds N] [--sizes 1000] [--reps 3] [--peers LIST]
#
# Uses the peer harness in ../shared/bench (gen_feeds.py, serve.py, run_bench.py and a
# peer_<name>.sh per tool): generates N feeds x 20 items (about 95 MB of RSS and Atom for 1,000),
# serves them on 127.0.0.1 with ETag and Last-Modified, and runs each tool's pass 1 (everything
# new) and pass 2 (nothing changed) under /usr/bin/time, the median of --reps runs. feedsieve runs
# as `feedsieve run --once` (bench/peer_feedsieve.sh), with full dedup. At the end it prints the
# harness's table and feedsieve's ratios to the fastest peer.
#
# --install installs the peers first (Debian packages and PyPI, as ../shared/bench/README.md
# says; needs root or sudo). Everything runs on loopback; results go to target/peers/<time>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
harness=${FEEDSIEVE_PEER_HARNESS:-$repo/../shared/bench}
feeds=1000 sizes=1000 reps=3 install=0
peers=feedsieve,sfeed,newsboat,feedparser,rss2email
while [ $# -gt 0 ]; do
    case "$1" in
    --install) install=1 ;;
    --feeds) feeds=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --reps) reps=$2; shift ;;
    --peers) peers=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$harness/run_bench.py" ] || { echo "peers: no peer harness at $harness" >&2; exit 2; }

if [ "$install" = 1 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq newsboat sfeed rss2email wamerican time sqlite3 curl python3-pip
    python3 -m pip install --quiet feedparser requests 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages feedparser requests
fi

echo "peers: building feedsieve (release)" >&2
(cd "$repo" && cargo build --release --quiet)
export FEEDSIEVE_BIN="$repo/target/release/feedsieve"

out="$repo/target/peers/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# The harness looks for peer_<name>.sh beside run_bench.py: run a copy with ours added.
cp -r "$harness" "$out/harness"
chmod -R u+w "$out/harness"
cp "$here/peer_feedsieve.sh" "$out/harness/"
if [ ! -f "$out/workload/urls.txt" ]; then
    echo "peers: generating $feeds feeds" >&2
    python3 "$out/harness/gen_feeds.py" --out "$out/workload" --feeds "$feeds" >&2
fi
python3 "$out/harness/run_bench.py" --workload "$out/workload" --sizes "$sizes" --reps "$reps" \
    --passes 2 --peers "$peers" --out "$out/results" --tmp "$out/state"

summary="$out/results/summary.md"
echo
echo "## $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo
cat "$summary"
echo
# feedsieve against the fastest peer (wall) and the thriftiest (CPU), per size.
python3 - "$summary" <<'PY'
import sys
rows = [l.strip().strip("|").split("|") for l in open(sys.argv[1]) if l.startswith("|") and "---" not in l]
head = [h.strip() for h in rows[0]]
col = {h: i for i, h in enumerate(head)}
by_n = {}
for r in rows[1:]:
    r = [c.strip() for c in r]
    try:
        by_n.setdefault(r[col["N"]], []).append((r[col["peer"]].split()[0], float(r[col["p1 wall s"]]), float(r[col["p1 CPU s"]]), r[col["p2 wall s"]]))
    except ValueError:
        pass
for n, rs in by_n.items():
    ours = [r for r in rs if r[0] == "feedsieve"]
    others = [r for r in rs if r[0] != "feedsieve"]
    if not ours or not others:
        continue
    _, wall, cpu, p2 = ours[0]
    fastest = min(others, key=lambda r: r[1])
    thrifty = min(others, key=lambda r: r[2])
    print(f"N={n}: feedsieve pass 1 {wall:.2f} s wall, {cpu:.2f} s CPU, pass 2 {p2} s; "
          f"{fastest[1] / wall:.1f}x faster than the fastest peer ({fastest[0]}, {fastest[1]:.2f} s), "
          f"{thrifty[2] / cpu:.1f}x less CPU than the thriftiest ({thrifty[0]}, {thrifty[2]:.2f} s)")
PY
echo "(results, logs and state: $out)" >&2
