#!/usr/bin/env bash
# Runs the install step of every test rig that has one (each is idempotent).
set -euo pipefail
cd "$(dirname "$0")/../.."
for script in tests/rig/*/install.sh; do
  [ -f "$script" ] || continue
  echo "setup-rigs: $script"
  bash "$script"
done
