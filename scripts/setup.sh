#!/usr/bin/env bash
# Installs what the tests need beyond cargo into git-ignored folders inside the repo, if missing:
#   .tools/venv   Python venv with moto's server (S3, DynamoDB, EventBridge, SQS, Secrets Manager
#                 stand-ins), cargo-lambda (runs the Lambda functions on a local Runtime API) and
#                 fakesnow (the Snowflake stand-in, behind tests/fakesnow/adapter.py)
#   .tools/sam    aws-sam-cli (sam validate --lint, with cfn-lint) for template.yaml
#   .tools/checkov  checkov, the IaC security scanner (its own venv: it pins other botocore versions)
#   chromium, chromium-driver (apt)  the headless browser the console's tests drive
#   infra/node_modules  the CDK app's packages (aws-cdk-lib, cdk-nag, the cdk CLI), as
#                 infra/package-lock.json pins them
# plus ziglang (in .tools/venv) and rustup's aarch64-unknown-linux-gnu standard library, with
# which cargo-lambda cross-compiles the arm64 functions that `sam build` and the CDK deploy.
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
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
if [ ! -x "$venv/bin/cargo-lambda" ] || ! "$venv/bin/pip" show cargo-lambda 2>/dev/null | grep -x "Version: $CARGO_LAMBDA_VERSION" >/dev/null; then
    echo "setup: installing cargo-lambda==$CARGO_LAMBDA_VERSION into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
FAKESNOW_VERSION="${FAKESNOW_VERSION:-0.12.1}"
if ! "$venv/bin/python" -c "import importlib.metadata as m, uvicorn, snowflake.connector, sys; sys.exit(m.version('fakesnow') != '$FAKESNOW_VERSION')" 2>/dev/null; then
    echo "setup: installing fakesnow[server]==$FAKESNOW_VERSION into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "fakesnow[server]==$FAKESNOW_VERSION" "snowflake-connector-python<5"
fi
SAM_VERSION="${SAM_VERSION:-1.170.0}"
if ! .tools/sam/bin/sam --version 2>/dev/null | grep -q "version $SAM_VERSION\$"; then
    echo "setup: installing aws-sam-cli==$SAM_VERSION into .tools/sam"
    python3 -m venv .tools/sam
    .tools/sam/bin/pip install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION"
fi
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
if ! .tools/checkov/bin/checkov --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    echo "setup: installing checkov==$CHECKOV_VERSION into .tools/checkov"
    python3 -m venv .tools/checkov
    .tools/checkov/bin/pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
if ! "$venv/bin/pip" show ziglang 2>/dev/null | grep -x "Version: $ZIGLANG_VERSION" >/dev/null; then
    echo "setup: installing ziglang==$ZIGLANG_VERSION into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIGLANG_VERSION"
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "setup: adding the aarch64-unknown-linux-gnu target (Lambda's arm64)"
    rustup target add aarch64-unknown-linux-gnu
fi
# The console's browser tests drive a real headless Chromium through chromedriver (Debian's
# packages; root or sudo is needed to install them).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "setup: installing chromium and chromium-driver (apt)"
    sudo_="" ; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
lock_sum="$(sha256sum infra/package-lock.json | cut -d' ' -f1)"
if [ ! -x infra/node_modules/.bin/cdk ] || [ "$(cat infra/node_modules/.sluice-lock 2>/dev/null)" != "$lock_sum" ]; then
    echo "setup: installing infra/ packages (npm ci)"
    (cd infra && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > infra/node_modules/.sluice-lock
fi
echo "setup: moto_server $("$venv/bin/python" -c 'import moto; print(moto.__version__)') at $venv/bin/moto_server"
