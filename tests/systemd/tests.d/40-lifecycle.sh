# Nothing outlives a killed launcher, and gc, for uid 1000 in its own user manager.
# Sourced by ../suite. 20-user-manager.sh runs before and starts user@1000.service; run alone
# (SYNWIRE_SYSTEMD_ONLY=lifecycle) this file starts it itself.
# Where agents go inside a user unit is being changed (inside the unit, or app.slice/synwire/
# agents beside it): the tests find the agent's cgroup from /proc/PID/cgroup, never assume it.

if ! declare -F as_user >/dev/null; then
    as_user() {
        runuser -u user -- env XDG_RUNTIME_DIR=/run/user/1000 \
            DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus "$@"
    }
fi
if [[ -z "$user_ready" ]]; then
    timeout 120 systemctl start user@1000.service 2>&1 | note
    [[ "$(systemctl is-active user@1000.service)" == active ]] && user_ready=1
fi

# "PID" lines for every process of the cgroup $1 (relative to the mount) and its subtree.
pids_below() {
    find "$cg$1" -name cgroup.procs -exec cat {} + 2>/dev/null
}
# True when none of the PIDs in $@ still runs (gone, or a zombie waiting for its reaper).
all_dead() {
    local p st
    for p in "$@"; do
        st=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' /proc/$p/stat 2>/dev/null)
        [[ -z "$st" || "$st" == Z || "$st" == X ]] || return 1
    done
}
# The running PIDs among $@, with their names and cgroups.
alive_of() {
    local p
    for p in "$@"; do
        all_dead "$p" || echo "$p $(cat /proc/$p/comm 2>/dev/null) $(sed -n 's/^0:://p' /proc/$p/cgroup 2>/dev/null)"
    done
}

# 1. The launcher SIGKILLed inside a Delegate=yes user unit, its agent with a daemonised
#    grandchild (setsid): within 1 s nothing of the agent runs, and its cgroup is gone.
t_user_unit_sigkill() {
    local name=user-unit-launcher-sigkilled u=lc-kill.service
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; return; }
    if ! as_user timeout 60 systemd-run --user --quiet --unit=$u -p Delegate=yes \
        /usr/bin/synwire-run -q -- /bin/sh -c \
        'setsid /bin/sleep 2000 </dev/null >/dev/null 2>&1 & exec /bin/sleep 2001'; then
        fail $name "systemd-run --user failed"
        return
    fi
    local main_pid err=""
    main_pid=$(as_user systemctl --user show -p MainPID --value $u)
    if ! poll 100 find_proc "$main_pid" sleep; then
        fail $name "no agent under synwire-run (MainPID $main_pid): $(descendants "$main_pid" | tr '\n' '|')"
        as_user systemctl --user stop $u
        return
    fi
    local agent_cg=$found_cg
    # Both sleeps: the agent and the daemon it left (setsid makes it its own session's leader).
    poll 100 eval '[[ $(pids_below "$agent_cg" | wc -l) -ge 2 ]]'
    local pids
    pids=$(pids_below "$agent_cg" | tr '\n' ' ')
    echo "agent cgroup $agent_cg, processes $pids; synwire-run $main_pid in $(sed -n 's/^0:://p' /proc/$main_pid/cgroup)" | note
    kill -9 "$main_pid"
    # 10 tries 0.1 s apart: the 1 s bound.
    # shellcheck disable=SC2086
    poll 10 all_dead $pids || err+="1 s after the SIGKILL still alive: $(alive_of $pids | tr '\n' '|'); "
    poll 10 eval '[[ ! -e "$cg$agent_cg" ]]' || err+="the agent cgroup $agent_cg is still there 1 s after; "
    # shellcheck disable=SC2086
    poll 50 all_dead $pids || err+="even 5 s after; "
    echo "after: $(as_user systemctl --user show -p ActiveState,Result $u | tr '\n' ' ')" | note
    as_user systemctl --user stop $u 2>/dev/null
    as_user systemctl --user reset-failed $u 2>/dev/null
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 2. gc as uid 1000 in its own user manager (a Delegate=yes user unit): a launcher and its
#    guardian SIGKILLed leave a daemon in the agent cgroup; `gc` keeps it and says so (exit 0),
#    `gc --kill` ends it and removes the cgroup (exit 0).
t_user_gc() {
    local name=gc-as-user out rc
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; return; }
    local script
    script=$(mktemp /tmp/lc-gc.XXXXXX)
    cat >"$script" <<'EOF'
out=$(mktemp)
/usr/bin/synwire-run -q -- /bin/sh -c \
    'setsid /bin/sleep 3000 </dev/null >/dev/null 2>&1 & echo ready; exec /bin/sleep 3001' >"$out" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
guard="" agent=""
for c in $(cat /proc/$launcher/task/*/children); do
    case "$(cat /proc/$c/comm)" in synwire-guard) guard=$c ;; sleep) agent=$c ;; esac
done
cg=$(sed -n 's/^0:://p' /proc/$agent/cgroup)
echo "launcher $launcher guardian $guard agent $agent in $cg"
kill -9 "$guard"
kill -9 "$launcher"
wait "$launcher" 2>/dev/null
echo "left in the agent cgroup: $(cat /sys/fs/cgroup$cg/cgroup.procs | tr '\n' ' ')"
/usr/bin/synwire-run gc
echo "gc-exit $?"
[ -d /sys/fs/cgroup$cg ] && echo "after-gc present" || echo "after-gc gone"
/usr/bin/synwire-run gc --kill
echo "gc-kill-exit $?"
[ -d /sys/fs/cgroup$cg ] && echo "after-gc-kill present" || echo "after-gc-kill gone"
rm -f "$out"
EOF
    chmod 755 "$script"
    out=$(as_user timeout 120 systemd-run --user --quiet --wait --pipe -p Delegate=yes /bin/sh "$script" 2>&1)
    rc=$?
    rm -f "$script"
    echo "$out" | note
    local err=""
    [[ $rc == 0 ]] || err+="the unit exited $rc; "
    grep -qx 'gc-exit 0' <<<"$out" || err+="gc did not exit 0; "
    grep -q 'outlived' <<<"$out" || err+="gc did not say a process outlived its launcher; "
    grep -qx 'after-gc present' <<<"$out" || err+="gc without --kill removed a populated cgroup; "
    grep -qx 'gc-kill-exit 0' <<<"$out" || err+="gc --kill did not exit 0; "
    grep -q '^removed /' <<<"$out" || err+="gc --kill removed nothing; "
    grep -qx 'after-gc-kill gone' <<<"$out" || err+="the stale cgroup is still there after gc --kill; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 3. gc --kill typed by uid 1000 in its login session (`su -l user` through PAM under `script`:
#    session-N.scope, where a launch would be refused): it finds the stale agent cgroup in its user
#    manager's subtree, ends the daemon, removes the cgroup and exits 0 (it used to exit 125).
t_session_gc() {
    local name=gc-kill-in-login-session out
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; return; }
    # The stale agent: a launcher and its guardian SIGKILLed in a user unit, a daemon left.
    local script
    script=$(mktemp /tmp/lc-stale.XXXXXX)
    cat >"$script" <<'STALE'
out=$(mktemp)
/usr/bin/synwire-run -q -- /bin/sh -c \
    'setsid /bin/sleep 4000 </dev/null >/dev/null 2>&1 & echo ready; exec /bin/sleep 4001' >"$out" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
for c in $(cat /proc/$launcher/task/*/children); do
    case "$(cat /proc/$c/comm)" in synwire-guard) guard=$c ;; sleep) agent=$c ;; esac
done
echo "stale $(sed -n 's/^0:://p' /proc/$agent/cgroup)"
kill -9 "$guard"
kill -9 "$launcher"
wait "$launcher" 2>/dev/null
rm -f "$out"
echo done
# The unit stays: an agent cgroup nested in a Delegate=yes unit goes with the unit when it stops
# (systemd removes the unit's whole subtree), and this one must wait for gc.
exec /bin/sleep 4002
STALE
    chmod 755 "$script"
    local report=/tmp/lc-stale.report
    rm -f "$report"
    as_user timeout 60 systemd-run --user --quiet --unit=syn-lc-stale -p Delegate=yes \
        -p StandardOutput=file:$report /bin/sh "$script" 2>&1 | note
    poll 100 grep -qx done "$report"
    out=$(cat "$report" 2>&1)
    rm -f "$script"
    echo "$out" | note
    local stale
    stale=$(sed -n 's/^stale //p' <<<"$out")
    if [[ -z "$stale" || ! -d "$cg$stale" ]]; then
        fail $name "no stale agent cgroup to collect: $out"
        as_user systemctl --user stop syn-lc-stale 2>&1 | note
        return
    fi
    local daemons
    daemons=$(tr '\n' ' ' <"$cg$stale/cgroup.procs")
    out=$(timeout 120 script -qec "su -l user -c 'cat /proc/self/cgroup; /usr/bin/synwire-run gc --kill; echo gc-exit=\$?'" /dev/null 2>&1 | tr -d '\r')
    echo "$out" | note
    local err=""
    grep -q '^0::/user.slice/user-1000.slice/session-.*\.scope$' <<<"$out" || err+="gc did not run in a login session; "
    grep -qx 'gc-exit=0' <<<"$out" || err+="gc --kill did not exit 0; "
    [[ ! -e "$cg$stale" ]] || err+="$stale is still there; "
    # shellcheck disable=SC2086
    poll 10 all_dead $daemons || err+="still alive: $(alive_of $daemons | tr '\n' '|'); "
    as_user systemctl --user stop syn-lc-stale 2>&1 | note
    rm -f "$report"
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

t_user_unit_sigkill
t_user_gc
t_session_gc
