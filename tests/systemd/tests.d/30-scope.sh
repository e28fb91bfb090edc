# Login sessions and terminals: synwire-run asks systemd for a transient scope with delegation.
# Real logind sessions come from `su -l USER` through PAM (pam_systemd) under script(1) for a pty:
# the shell runs in /user.slice/user-N.slice/session-N.scope. Sourced by ../suite.

# Runs the shell text $2 in a login session of user $1; prints its output (the pty's, without
# carriage returns) and returns its status.
in_login() {
    local who=$1 f rc
    f=$(mktemp /tmp/scope-XXXXXX.sh)
    printf '#!/bin/sh\n%s\n' "$2" >"$f"
    chmod 755 "$f"
    # The pty echoes the end of script's (empty) input as ^@ where sudo reads the terminal.
    timeout 300 script -qec "su -l $who -c $f" /dev/null </dev/null | tr -d '\r' | sed 's/\^@//g'
    rc=${PIPESTATUS[0]}
    rm -f "$f"
    return "$rc"
}

# The agent: where it runs, the memory limit of its cgroup read from inside, and its scope as the
# manager lists it while the run goes on.
cat >/tmp/scope-agent <<'EOF'
#!/bin/sh
c=$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "agent-cg $c"
echo "agent-session $(sed -n 's/^0:://p' /proc/$PPID/cgroup)"
echo "agent-memory.max $(cat /sys/fs/cgroup$c/memory.max)"
u=$(echo "$c" | grep -o 'synwire-[0-9a-f]*\.scope')
if [ "$(id -u)" = 0 ]; then
    systemctl list-units --no-legend --plain "$u"
else
    XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user list-units --no-legend --plain "$u"
fi | sed 's/^/agent-unit /'
EOF
chmod 755 /tmp/scope-agent

# systemctl for the manager that owns a scope: "system" or a uid.
scope_ctl() {
    local who=$1
    shift
    if [[ $who == system ]]; then
        systemctl "$@"
    else
        runuser -u "$(id -nu "$who")" -- env XDG_RUNTIME_DIR="/run/user/$who" systemctl --user "$@"
    fi
}
unit_gone() { [[ -z "$(scope_ctl "$1" list-units --all --no-legend --plain "$2")" ]]; }

# Checks one run of /tmp/scope-agent under `synwire-run --profile small`: exit 0, the agent in
# <manager's synwire.slice>/synwire-XXXXXXXX.scope/synwire/agents/<uuid>, memory.max 512 MiB, the
# scope listed during the run, and both scope and cgroup gone afterwards. $3 is "system" or a uid.
check_scoped_run() {
    local name=$1 out=$2 who=$3 rc=$4 err="" want agent_cg unit
    echo "$out" | grep -v '^$' | note
    if [[ $who == system ]]; then
        want='^/synwire\.slice/synwire-[0-9a-f]{8}\.scope/synwire/agents/[0-9a-f-]{36}$'
    else
        want="^/user\\.slice/user-$who\\.slice/user@$who\\.service/synwire\\.slice/synwire-[0-9a-f]{8}\\.scope/synwire/agents/[0-9a-f-]{36}\$"
    fi
    agent_cg=$(sed -n 's/^agent-cg //p' <<<"$out")
    [[ $rc == 0 ]] || err+="exit status $rc; "
    [[ "$agent_cg" =~ $want ]] || err+="agent in '$agent_cg', expected $want; "
    grep -qx 'agent-memory.max 536870912' <<<"$out" ||
        err+="memory.max in the agent's cgroup: '$(sed -n 's/^agent-memory.max //p' <<<"$out")', not 536870912; "
    unit=$(grep -o 'synwire-[0-9a-f]\{8\}\.scope' <<<"$agent_cg")
    grep -qE "^agent-unit $unit +loaded +active +running" <<<"$out" ||
        err+="the scope was not listed as active by systemctl during the run; "
    if [[ -n "$unit" ]]; then
        poll 50 unit_gone "$who" "$unit" || err+="$unit still listed after the run: $(scope_ctl "$who" list-units --all --no-legend --plain "$unit"); "
        local scope_cg=${agent_cg%/synwire/agents/*}
        poll 50 test ! -e "$cg$scope_cg" || err+="$cg$scope_cg left after the run; "
    fi
    [[ -z "$err" ]] && ok "$name" || fail "$name" "$err"
}

# 1. root and uid 1000 in their own login sessions.
t_login_sessions() {
    local out rc
    out=$(in_login root 'synwire-run --profile small -- /tmp/scope-agent')
    rc=$?
    check_scoped_run login-session-root-gets-a-system-scope "$out" system $rc
    out=$(in_login user 'synwire-run --profile small -- /tmp/scope-agent')
    rc=$?
    check_scoped_run login-session-user-gets-a-user-scope "$out" 1000 $rc
}

# 2. The ways people switch users from a terminal, from root's login session (and sudo from the
#    user's): root asks PID 1, uid 1000 its own user manager (found without XDG_RUNTIME_DIR).
t_switch_user() {
    local out rc tcase who login cmd
    while IFS='|' read -r tcase who login cmd; do
        out=$(in_login "$login" "$cmd")
        rc=$?
        check_scoped_run "$tcase" "$out" "$who" $rc
    done <<'EOF'
login-session-sudo|system|user|sudo synwire-run --profile small -- /tmp/scope-agent
login-session-sudo-i|system|root|sudo -i synwire-run --profile small -- /tmp/scope-agent
login-session-runuser-u|1000|root|runuser -u user -- synwire-run --profile small -- /tmp/scope-agent
login-session-runuser-l|1000|root|runuser -l user -c 'synwire-run --profile small -- /tmp/scope-agent'
login-session-sudo-u|1000|root|sudo -u user synwire-run --profile small -- /tmp/scope-agent
EOF
}

# 3. --no-scope keeps the refusal; where no manager answers (nobody has no user manager), the
#    refusal says what was tried and suggests the user manager's systemd-run, which needs no
#    password.
t_refusals() {
    local name=login-session-no-scope-refused out rc
    out=$(in_login root 'synwire-run --no-scope --profile small -- /bin/true')
    rc=$?
    echo "$out" | note
    if [[ $rc == 125 ]] && grep -q 'Delegate=' <<<"$out" && ! grep -q 'transient scope' <<<"$out"; then
        ok $name
    else
        fail $name "exit status $rc (want 125 naming Delegate=, without asking for a scope)"
    fi
    name=login-session-no-manager-says-what-was-tried
    out=$(in_login root 'runuser -u nobody -- synwire-run --profile small -- /bin/true')
    rc=$?
    echo "$out" | note
    if [[ $rc == 125 ]] && grep -q 'systemd-run --user --scope -p Delegate=yes' <<<"$out" &&
        grep -q 'asked your user manager' <<<"$out"; then
        ok $name
    else
        fail $name "exit status $rc (want 125, what was tried, and systemd-run --user --scope)"
    fi
}

# 4. `systemctl stop` of the scope ends the run as a forwarded SIGTERM: exit 143 (or death by
#    SIGTERM, which the shell also reports as 143), the statistics printed, nothing left.
t_scope_stop() {
    local name=systemctl-stop-of-the-scope err="" unit="" pid f agent="" scope_cg
    rm -f /tmp/scope-stop.err /tmp/scope-stop.rc
    in_login root 'synwire-run --profile small -- sleep 300 2>/tmp/scope-stop.err; echo $? >/tmp/scope-stop.rc' >/dev/null &
    pid=$!
    find_agent() {
        unit=$(systemctl list-units --no-legend --plain 'synwire-*.scope' | awk '{print $1; exit}')
        [[ -n "$unit" ]] || return 1
        f=$(find "$cg/synwire.slice/$unit/synwire/agents" -mindepth 2 -name cgroup.procs 2>/dev/null | head -n1)
        [[ -n "$f" ]] && agent=$(head -n1 "$f") && [[ -n "$agent" ]]
    }
    if ! poll 300 find_agent; then
        fail $name "no scope with an agent appeared: $(systemctl list-units --no-legend 'synwire-*')"
        kill "$pid" 2>/dev/null
        wait "$pid"
        return
    fi
    scope_cg=/synwire.slice/$unit
    timeout 60 systemctl stop "$unit" || err+="systemctl stop $unit failed; "
    wait "$pid"
    sed 's/^/stderr: /' /tmp/scope-stop.err | note
    [[ "$(cat /tmp/scope-stop.rc 2>/dev/null)" == 143 ]] ||
        err+="synwire-run ended with '$(cat /tmp/scope-stop.rc 2>/dev/null)', not 143; "
    grep -q 'SIGTERM' /tmp/scope-stop.err || err+="no summary naming SIGTERM; "
    grep -q '  wall ' /tmp/scope-stop.err || err+="no statistics line; "
    [[ ! -e /proc/$agent ]] || err+="agent $agent still running; "
    poll 50 test ! -e "$cg$scope_cg" || err+="$cg$scope_cg left; "
    poll 50 unit_gone system "$unit" || err+="$unit still listed; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 4b. Where a manager's private socket cannot be used (a container that shares only the bus, a
#     locked-down socket), the scope is asked for through the bus daemon: AddMatch, Subscribe,
#     StartTransientUnit, JobRemoved on the system bus (root) and the user's session bus.
t_via_bus() {
    local out rc
    # PID 1 listens there still; only this path is hidden.
    mount --bind /dev/null /run/systemd/private
    out=$(in_login root 'synwire-run -vv --profile small -- /tmp/scope-agent')
    rc=$?
    umount /run/systemd/private
    check_scoped_run scope-through-the-system-bus "$out" system $rc
    grep -q 'system_bus_socket: JobRemoved' <<<"$out" || echo "(no JobRemoved line from the system bus above)" | note
    local mode
    mode=$(stat -c %a /run/user/1000/systemd/private)
    chmod 000 /run/user/1000/systemd/private
    out=$(in_login user 'synwire-run -vv --profile small -- /tmp/scope-agent')
    rc=$?
    chmod "$mode" /run/user/1000/systemd/private
    check_scoped_run scope-through-the-session-bus "$out" 1000 $rc
}

# 5. Operators cap all agents together with a drop-in on synwire.slice.
t_slice_dropin() {
    local name=synwire-slice-drop-in-caps-every-agent out rc
    mkdir -p /etc/systemd/system/synwire.slice.d
    printf '[Slice]\nMemoryMax=300M\n' >/etc/systemd/system/synwire.slice.d/cap.conf
    # The slice (idle between runs) starts again with the drop-in on the next scope.
    systemctl daemon-reload
    systemctl stop synwire.slice
    out=$(in_login root 'synwire-run -q --profile small -- cat /sys/fs/cgroup/synwire.slice/memory.max')
    rc=$?
    rm -rf /etc/systemd/system/synwire.slice.d
    systemctl daemon-reload
    systemctl stop synwire.slice
    echo "$out" | note
    if [[ $rc == 0 ]] && grep -qx 314572800 <<<"$out"; then ok $name; else fail $name "exit $rc, synwire.slice memory.max: $out"; fi
}

# 6. What the scope path costs beside `systemd-run --scope` (informational: TCG timing), both from
#    a login session, root and uid 1000.
t_scope_cost() {
    local name=scope-path-cost out rc
    out=$(in_login root 'cd /tmp && hyperfine -N --warmup 3 --runs 20 --style none --export-csv /tmp/scope-cost-root.csv \
        -n "synwire-run --profile small (system scope)" "synwire-run -q --profile small -- /bin/true" \
        -n "systemd-run --scope" "systemd-run --quiet --scope /bin/true" >/dev/null && cat /tmp/scope-cost-root.csv')
    rc=$?
    out+=$'\n'$(in_login user 'cd /tmp && hyperfine -N --warmup 3 --runs 20 --style none --export-csv /tmp/scope-cost-user.csv \
        -n "synwire-run --profile small (user scope)" "synwire-run -q --profile small -- /bin/true" \
        -n "systemd-run --user --scope" "systemd-run --user --quiet --scope /bin/true" >/dev/null && cat /tmp/scope-cost-user.csv')
    rc=$((rc + $?))
    echo "$out" | grep -v '^$' | sed 's/^/cost /' | note
    # The scope path itself — from synwire-run's request to being in the scope, the wait for the
    # same job systemd-run waits for — beside the whole `systemd-run --scope true`: 15 runs as -v
    # reports them, the median in ms.
    local acquire
    acquire=$(in_login root 'for i in $(seq 15); do synwire-run -v -q --profile small -- /bin/true 2>&1; done' |
        sed -n 's/.*in transient scope .* after \([0-9.]*\)\(m\?s\).*/\1 \2/p' |
        awk '{ print ($2 == "s") ? $1 * 1000 : $1 }' | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
    echo "cost scope path (request to in the scope), median of 15: ${acquire:-?} ms" | note
    if [[ $rc == 0 ]] && [[ $(grep -c 'scope' <<<"$out") -ge 4 ]] && [[ -n "$acquire" ]]; then ok $name; else fail $name "hyperfine failed ($rc) or no scope timing (${acquire:-none})"; fi
}

echo 'user ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/synwire-test
chmod 440 /etc/sudoers.d/synwire-test
# runuser -u and sudo -u open no session: uid 1000's user manager must already run.
loginctl enable-linger user 2>&1 | note
timeout 120 systemctl start user@1000.service 2>&1 | note
t_login_sessions
t_switch_user
t_refusals
t_scope_stop
t_via_bus
t_slice_dropin
t_scope_cost
