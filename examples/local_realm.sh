#!/usr/bin/env bash
# A 3-node realm on this machine: two workers and one broker-only node, all on 127.0.0.1.
#   examples/local_realm.sh          start them (logs in $DIR/*.log), run a chat through the broker
#   examples/local_realm.sh stop     stop them
# The workers use the embedded SmolLM2 (first start converts it once, with progress in the log).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MTOR_NODE:-.venv/bin/mtor-node}
DIR=${DIR:-/tmp/mtor-local-realm}
if [ "${1:-}" = "stop" ]; then
  for n in w1 w2 broker; do [ -f "$DIR/$n/node.json" ] && kill "$(python3 -c "import json;print(json.load(open('$DIR/$n/node.json'))['pid'])")" || true; done
  exit 0
fi
mkdir -p "$DIR"
start() {  # name http-port p2p-port extra-args...
  local name=$1 http=$2 p2p=$3; shift 3
  "$BIN" start --data-dir "$DIR/$name" --port "$http" --p2p-host 127.0.0.1 --p2p-port "$p2p" "$@" >"$DIR/$name.log" 2>&1 &
  for _ in $(seq 1 300); do [ -f "$DIR/$name/node.json" ] && return 0; sleep 0.1; done
  echo "$name did not start; see $DIR/$name.log" >&2; exit 1
}
W1=$("$BIN" init --data-dir "$DIR/w1" | awk '/peer id/{print $3}')
start w1 9101 9201
start w2 9102 9202 --peer "/ip4/127.0.0.1/tcp/9201/p2p/$W1"
start broker 9103 9203 --roles broker --peer "/ip4/127.0.0.1/tcp/9201/p2p/$W1"
echo "waiting for the workers' announcements..."
for _ in $(seq 1 100); do
  "$BIN" peers --data-dir "$DIR/broker" --json | grep -q '"chat"' && break; sleep 0.3
done
"$BIN" peers --data-dir "$DIR/broker"
echo; echo "chat through the broker (a worker answers; the first answer waits for the model to load):"
"$BIN" chat --data-dir "$DIR/broker" --json "What is the capital of France?"
echo; echo "stop with: $0 stop"
