#!/bin/bash
# Stop every process the rig recorded (by PGID), computes first. Data and logs stay until the next up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ ! -d "$RIG_DIR/run" ]; then echo "rig not running (nothing recorded in $RIG_DIR/run)"; exit 0; fi
rig_cli down
