#!/bin/bash
# Install what the OpenStack test rig needs (idempotent, safe to re-run):
#  - Debian packages: MariaDB and RabbitMQ servers (never auto-started here: the rig starts
#    its own instances), a compiler and Python headers for uWSGI, python3-venv;
#  - the rig's own venv (<rig dir>/venv) with the pinned OpenStack services from
#    requirements.txt, every dependency pinned by constraints.txt. Skipped when the venv's
#    stamp matches the hash of those two files.
# Env: COMPUTEHA_RIG_DIR, COMPUTEHA_RIG_PYTHON (an interpreter >= 3.11; default python3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
T0=$(date +%s)
PY=${COMPUTEHA_RIG_PYTHON:-python3}

need_apt=()
for pkg in mariadb-server mariadb-client rabbitmq-server erlang-base gcc python3-dev python3-venv curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "apt: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting the system-wide services: the rig runs its own on loopback.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; created_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

"$PY" - <<'PYEOF'
import sys
if sys.version_info < (3, 11):
    sys.exit("the OpenStack rig needs Python >= 3.11 (nova 34); set COMPUTEHA_RIG_PYTHON")
PYEOF

want=$(cat "$RIG_SRC/requirements.txt" "$RIG_SRC/constraints.txt" | sha256sum | cut -d' ' -f1)
stamp="$RIG_VENV/.computeha-requirements.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$RIG_VENV/bin/nova-compute" ]; then
  echo "rig venv up to date: $RIG_VENV"
else
  mkdir -p "$RIG_DIR/logs"
  echo "creating rig venv $RIG_VENV (pip output: $RIG_DIR/logs/install-pip.log)"
  rm -f "$stamp"
  "$PY" -m venv "$RIG_VENV"
  "$RIG_VENV/bin/pip" install -q -U pip setuptools wheel > "$RIG_DIR/logs/install-pip.log" 2>&1
  "$RIG_VENV/bin/pip" install -r "$RIG_SRC/requirements.txt" -c "$RIG_SRC/constraints.txt" >> "$RIG_DIR/logs/install-pip.log" 2>&1 || {
    echo "pip install failed; see $RIG_DIR/logs/install-pip.log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
echo "openstack rig installed in $(( $(date +%s) - T0 ))s"
