#!/bin/bash
# Bring the OpenStack test rig up (idempotent: a healthy rig is reused, dead computes restarted).
# Prints where clouds.yaml and the logs are. Env: COMPUTEHA_RIG_DIR, COMPUTEHA_RIG_COMPUTES (3),
# COMPUTEHA_RIG_BIND (127.0.0.1), COMPUTEHA_RIG_PORT_OFFSET (0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
rig_cli up
