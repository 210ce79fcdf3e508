#!/bin/sh
# chassis_control program for one ipmi_sim BMC of the test rig.
#
# ipmi_sim runs it through popen() as
#   chassis.sh BMC_DIR get power [boot]      -> prints "power:0|1" ("boot:default")
#   chassis.sh BMC_DIR set power 0|1 [...]   -> changes the power state
#   chassis.sh BMC_DIR check                 -> exit 0
# ipmi_sim reads our stdout until EOF, so anything started in the background
# must not keep stdout open.
#
# BMC_DIR holds:
#   power          the power state, "1" (on) or "0" (off)
#   chassis.conf   behaviour, re-read on every call (so tests can change it):
#                    STUCK_ON=1     accept "power off" but stay on
#                    POWER_DELAY=s  the state changes s seconds after the request
#                    REPLY_DELAY=s  every call sleeps s seconds first (slow BMC)
#   hook-off, hook-on   optional executables run when the power really goes
#                  off / on (the cluster rig kills / boots a node with them)
#   chassis.log    one line per call
set -u
DIR="$1"; shift
op="${1:-}"; [ $# -gt 0 ] && shift

STUCK_ON=0; POWER_DELAY=0; REPLY_DELAY=0
[ -f "$DIR/chassis.conf" ] && . "$DIR/chassis.conf"
[ -f "$DIR/power" ] || echo 1 > "$DIR/power"

log() { echo "$(date +%s.%N) $*" >> "$DIR/chassis.log"; }

# Write the new state and run the hook if the state really changed.
apply_power() {
    old="$(cat "$DIR/power")"
    echo "$1" > "$DIR/power.tmp" && mv "$DIR/power.tmp" "$DIR/power"
    log "applied power $1 (was $old)"
    if [ "$old" != "$1" ]; then
        hook="$DIR/hook-off"; [ "$1" = 1 ] && hook="$DIR/hook-on"
        if [ -x "$hook" ]; then
            "$hook" </dev/null >>"$DIR/hook.log" 2>&1
            log "hook $(basename "$hook") rc=$?"
        fi
    fi
}

set_power() {
    v="$1"
    if [ "$v" = 0 ] && [ "$STUCK_ON" = 1 ]; then
        log "set power 0 ignored (stuck on)"
        return 0
    fi
    # A newer request supersedes a pending delayed one.
    token="$$.$(date +%s%N)"
    echo "$token" > "$DIR/power.pending"
    if [ "$POWER_DELAY" = 0 ]; then
        apply_power "$v"
    else
        log "set power $v pending for ${POWER_DELAY}s"
        (
            sleep "$POWER_DELAY"
            [ "$(cat "$DIR/power.pending" 2>/dev/null)" = "$token" ] && apply_power "$v"
        ) </dev/null >/dev/null 2>&1 &
    fi
}

[ "$REPLY_DELAY" = 0 ] || sleep "$REPLY_DELAY"
log "$op $*"
case "$op" in
    get)
        for p in "$@"; do
            case "$p" in
                power) echo "power:$(cat "$DIR/power")" ;;
                boot) echo "boot:default" ;;
                *) log "unknown get parameter $p"; exit 1 ;;
            esac
        done ;;
    set)
        while [ $# -gt 1 ]; do
            p="$1"; v="$2"; shift 2
            case "$p" in
                power) set_power "$v" ;;
                reset|boot|shutdown|identify) : ;;
                *) log "unknown set parameter $p"; exit 1 ;;
            esac
        done ;;
    check) : ;;
    *) log "unknown operation $op"; exit 1 ;;
esac
exit 0
