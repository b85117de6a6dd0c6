#!/usr/bin/env bash
# Every test: formatting, lints (clippy, cfn-lint), unit tests, the ASL conformance cases and the
# integration tests against a local moto server. Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-local-aws.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo clippy -p functions --features lambda --all-targets -- -D warnings (the step handlers)" >&2
cargo clippy -p functions --features lambda --all-targets -- -D warnings

echo "== cfn-lint infra/" >&2
.venv/bin/cfn-lint infra/*.json

echo "== cargo test (unit, conformance, rendered templates through cfn-lint, moto integration)" >&2
cargo test --workspace

echo "== cargo test -p functions --features lambda --lib lambda (the handlers' errorType and logs)" >&2
cargo test -p functions --features lambda --lib lambda
