# A clean stop under systemd and the OOM policy (issue 10 items 5 and 6). Sourced by ../suite.

# 1. A unit with only Delegate=yes: `systemctl stop` ends it with Result=success (synwire-run died
#    of the SIGTERM its agent died of), nothing left behind.
t_minimal_stop() {
    local name=minimal-delegate-unit-stops-clean u=syn-minimal.service ucg=/system.slice/syn-minimal.service
    if ! timeout 120 systemctl start "$u"; then
        fail $name "systemctl start failed: $(unit_info $u)"
        systemctl reset-failed "$u" 2>/dev/null
        return
    fi
    local main_pid err=""
    main_pid=$(show $u MainPID)
    poll 50 find_proc "$main_pid" sleep || err+="no agent (sleep) under synwire-run $main_pid; "
    timeout 60 systemctl stop "$u" || err+="systemctl stop failed; "
    local result
    result=$(show $u Result)
    echo "after stop: $(unit_info $u)" | note
    # Before issue 10 this was Result=exit-code, ActiveState failed: synwire-run exited 143.
    [[ "$result" == success ]] || err+="Result=$result, not success; "
    [[ "$(show $u ActiveState)" == inactive ]] || err+="ActiveState $(show $u ActiveState); "
    [[ ! -e "$cg$ucg" ]] || err+="$ucg left: $(find "$cg$ucg" -type d | tr '\n' ' '); "
    [[ ! -e /proc/$main_pid ]] || err+="synwire-run $main_pid still running; "
    journalctl -q -u $u -o cat --no-pager | grep 'synwire-run: agent' | note
    systemctl reset-failed "$u" 2>/dev/null
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# Runs `synwire-run --profile small ARGS -- stress-ng --vm 1 --vm-bytes 1G --vm-keep STRESS_ARGS`
# in a Delegate=yes transient service (`systemd-run --wait`), stats in /tmp/$1.json; after the run
# sets `cpu` to synwire-run's own CPU (its supervisor cgroup's cpu.stat, read by ExecStopPost
# before systemd removes the unit's cgroup) and `status` to the unit's ExecMainStatus.
stress_run() {
    local unit=$1 stress_args=$2
    shift 2
    local stats=/tmp/$unit.json cpu_file=/run/$unit.cpu
    rm -f "$stats" "$cpu_file"
    timeout 300 systemd-run --quiet --wait --unit "$unit" -p Delegate=yes \
        -p "ExecStopPost=/bin/sh -c 'cat $cg/system.slice/$unit.service/supervisor/cpu.stat >$cpu_file'" \
        /usr/bin/synwire-run -v --profile small --stats-file "$stats" "$@" -- \
        /usr/bin/stress-ng --vm 1 --vm-bytes 1G --vm-keep $stress_args >/dev/null 2>&1
    status=$(show "$unit.service" ExecMainStatus)
    cpu=$(awk '{printf "%s=%s ", $1, $2}' "$cpu_file" 2>/dev/null)
    journalctl -q -u "$unit.service" -o cat --no-pager | grep -E '^synwire-run: agent|^  |own CPU' | head -n 5 | note
    systemctl reset-failed "$unit.service" 2>/dev/null
}

# A JSON value from a stats file: the number or string after "KEY":.
stat_of() {
    sed -n "s/^ *\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -n1
}

# 2. stress-ng under `small` (its parent OOM-immune): the first OOM kill ends the whole agent,
#    137 / oom_killed (oom_policy = "kill", the default). Notes synwire-run's own CPU.
t_stress_oom_kill() {
    local name=stress-ng-oom-kill-137 unit=syn-stress-kill err=""
    stress_run $unit "--timeout 60s"
    local stats=/tmp/$unit.json
    echo "synwire-run's own CPU (supervisor cpu.stat): $cpu" | note
    echo "agent: outcome $(stat_of $stats outcome) exit $(stat_of $stats exit_code) oom_kills $(stat_of $stats oom_kills) wall $(stat_of $stats wall_time_us) us cpu $(stat_of $stats cpu_usage_us) us" | note
    [[ "$status" == 137 ]] || err+="unit ExecMainStatus $status, not 137; "
    [[ "$(stat_of $stats outcome)" == oom_killed ]] || err+="outcome $(stat_of $stats outcome), not oom_killed; "
    [[ "$(stat_of $stats exit_code)" == 137 ]] || err+="exit_code $(stat_of $stats exit_code); "
    [[ "$(stat_of $stats oom_kills)" -ge 1 ]] 2>/dev/null || err+="oom_kills $(stat_of $stats oom_kills); "
    [[ ! -e $cg/system.slice/$unit.service ]] || err+="unit cgroup left; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 3. The same with oom_policy = "continue": stress-ng runs on to its own --timeout; the statistics
#    count the OOM kills and the summary's first line says so. Notes synwire-run's own CPU, which
#    covers a teardown that waits for stress-ng's dying workers.
oom_continue_args=(--set limits.oom_policy=continue)
t_stress_oom_continue() {
    local name=stress-ng-oom-continue unit=syn-stress-cont err=""
    stress_run $unit "--timeout 15s" "${oom_continue_args[@]}"
    local stats=/tmp/$unit.json first
    echo "synwire-run's own CPU (supervisor cpu.stat): $cpu" | note
    echo "agent: outcome $(stat_of $stats outcome) exit $(stat_of $stats exit_code) oom_kills $(stat_of $stats oom_kills) leftovers $(stat_of $stats leftover_processes) wall $(stat_of $stats wall_time_us) us" | note
    first=$(journalctl -q -u "$unit.service" -o cat --no-pager | grep -m1 '^synwire-run: agent')
    [[ "$(stat_of $stats outcome)" != oom_killed ]] || err+="outcome oom_killed under continue; "
    [[ "$(stat_of $stats oom_kills)" -ge 1 ]] 2>/dev/null || err+="oom_kills $(stat_of $stats oom_kills); "
    [[ "$first" == *"out-of-memory killer ended"* ]] || err+="first line: $first; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

t_minimal_stop
t_stress_oom_kill
t_stress_oom_continue
