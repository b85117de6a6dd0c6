#!/usr/bin/env bash
# Installs the local AWS (moto server), cfn-lint and jsonschema into ./.venv, pinned. Idempotent: a second run
# that finds the pinned versions installed returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5      # 5.2.1 has a Step Functions bug (DESIGN.md "Local AWS")
CFN_LINT_VERSION=1.58.0
JSONSCHEMA_VERSION=4.26.0  # the tests validate execution inputs against statemachines/input.schema.json
stamp=".venv/.aliasflow-moto-${MOTO_VERSION}-cfnlint-${CFN_LINT_VERSION}-jsonschema-${JSONSCHEMA_VERSION}"

if [ -f "$stamp" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  "moto[server]==${MOTO_VERSION}" "cfn-lint==${CFN_LINT_VERSION}" "jsonschema==${JSONSCHEMA_VERSION}"
touch "$stamp"
echo "local AWS ready: .venv/bin/moto_server (moto ${MOTO_VERSION}), .venv/bin/cfn-lint (${CFN_LINT_VERSION})" >&2
