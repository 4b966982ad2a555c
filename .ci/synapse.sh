#!/usr/bin/env bash
# Install Synapse (matrix-synapse from PyPI) into its own virtual environment when missing.
# Prints the path of the environment's python on the last line of stdout.
# QUNYUN_SYNAPSE_VENV chooses the place (default: ~/.cache/qunyun/synapse-venv);
# QUNYUN_SYNAPSE_VERSION pins a version (default: the newest).
set -euo pipefail
VENV="${QUNYUN_SYNAPSE_VENV:-$HOME/.cache/qunyun/synapse-venv}"
PY="${QUNYUN_SYNAPSE_PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import synapse.app.homeserver" 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi
mkdir -p "$(dirname "$VENV")"
# Several test processes may ask at once: one installs, the others wait.
exec 9>"$VENV.lock"
flock 9
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import synapse.app.homeserver" 2>/dev/null; }; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --upgrade pip >&2
  SPEC="matrix-synapse"
  if [ -n "${QUNYUN_SYNAPSE_VERSION:-}" ]; then SPEC="matrix-synapse==$QUNYUN_SYNAPSE_VERSION"; fi
  "$VENV/bin/pip" install --quiet "$SPEC" >&2
fi
echo "$VENV/bin/python"
