#!/usr/bin/env bash
# Installs what the tests need beyond cargo into git-ignored folders inside the repo, if missing:
#   .tools/venv   Python venv with moto's server (S3, DynamoDB, EventBridge, SQS stand-ins)
# Idempotent and quiet when everything is there. Tests find the tools through these paths.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
venv=.tools/venv

if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "setup: installing moto[server]==$MOTO_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
echo "setup: moto_server $("$venv/bin/python" -c 'import moto; print(moto.__version__)') at $venv/bin/moto_server"
