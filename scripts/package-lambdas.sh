#!/usr/bin/env bash
# Builds the step handlers as Lambda zips for provided.al2023 on arm64 (cross-compiled with
# cargo-lambda, which brings zig) and prints each zip's size. Slow (a release build with LTO for
# another target), so it is not part of scripts/test.sh.
#
#   bash scripts/package-lambdas.sh            # every step binary
#   bash scripts/package-lambdas.sh plan acquire_lock   # only these
#   CARGO_TARGET_DIR=/elsewhere bash scripts/package-lambdas.sh
#
# The zips land in $CARGO_TARGET_DIR/lambda/<binary>/bootstrap.zip (default target/), the layout
# `aliasflow bootstrap --engine aws` uploads as <HandlerCodePrefix>/<binary>.zip.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
if ! .venv/bin/cargo-lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
# cargo-lambda finds the zig that its wheel installed on PATH.
export PATH="$PWD/.venv/bin:$PATH"

# The binaries are the step names, snake_case: every [[bin]] of functions/Cargo.toml.
if [ "$#" -gt 0 ]; then
  binaries=("$@")
else
  mapfile -t binaries < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' functions/Cargo.toml | tail -n +2)
fi
args=()
for binary in "${binaries[@]}"; do args+=(--bin "$binary"); done

echo "== cargo lambda build --profile lambda --arm64 (${#binaries[@]} step binaries)" >&2
cargo lambda build -p functions --profile lambda --arm64 --features lambda --output-format zip "${args[@]}"

target="${CARGO_TARGET_DIR:-target}"
echo "== zip sizes" >&2
for binary in "${binaries[@]}"; do
  zip="$target/lambda/$binary/bootstrap.zip"
  printf '%-22s %9d bytes\n' "$binary" "$(stat -c %s "$zip")"
done
