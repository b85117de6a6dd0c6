#!/usr/bin/env bash
# The demo: starts a local AWS (moto) on a free loopback port, installs aliasflow's deployer into
# it, and walks the example service (examples/shop) through its lifecycle, printing each command
# and what it shows. Nothing leaves this machine; the server stops when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup-local-aws.sh
echo "== building aliasflow" >&2
cargo build --quiet --bin aliasflow
bin="$root/target/debug/aliasflow"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
# moto's server with the function tags aliasflow's ownership checks read (see the script).
"$root/.venv/bin/python" scripts/moto-server.py -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_SESSION_TOKEN=demo
# moto needs the functions' execution role to exist before CreateFunction; the service stack
# creates it, so nothing to prepare here.

# A copy of the example, so the demo's code change does not touch the repository.
cp -r "$root/examples/shop" "$work/shop"
cd "$work/shop"

step() {
  printf '\n\033[1m$ aliasflow %s\033[0m\n' "$*"
  "$bin" "$@"
}

echo "local AWS (moto) at $AWS_ENDPOINT_URL"
step validate
step bootstrap
step deploy
step deploy --stage dev
step deploy --stage prod
step status

printf '\n\033[1m# change the code of one function (api) and deploy dev again: no stack operation\033[0m\n'
sed -i 's/^CODE_MARK=.*/CODE_MARK="v2: faster orders"/' functions/api/bootstrap
step deploy --stage dev
step status
step history --stage dev

printf '\n\033[1m# roll dev back: its aliases return to the deployment before, no version published, no stack touched\033[0m\n'
step rollback --stage dev
step status --stage dev

printf '\n\033[1m# reset dev from prod, like git reset: the code and configuration of prod, the stage resources of dev\033[0m\n'
step reset --stage dev --from prod
step status

printf '\n\033[1m# clone prod to a feature stage: its own stack, the versions of prod where nothing binds them to a stage\033[0m\n'
step clone --stage feature --from prod
step status

printf '\n\033[1m# remove the feature stage: aliases and stack gone, history kept, unneeded versions deleted\033[0m\n'
step remove --stage feature
step status
step history --stage feature
step history --stage dev --output json
