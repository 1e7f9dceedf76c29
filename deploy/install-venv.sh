#!/bin/sh
# The monitor's production install, one recipe for `make install` and the Docker image:
# a new venv at PREFIX with the service's dependencies exactly as locked (versions and
# hashes: requirements.lock, no test tools), then the monitor's wheel without dependencies.
#   deploy/install-venv.sh PREFIX WHEEL LOCK      (PYTHON: the interpreter, default python3)
set -eu
prefix=$1 wheel=$2 lock=$3
python=${PYTHON:-python3}
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "error: $python cannot make a venv: apt-get install python3-venv" >&2
    exit 1
fi
"$python" -m venv "$prefix"
"$prefix/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$lock"
"$prefix/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
"$prefix/bin/pip" check --disable-pip-version-check >/dev/null
