# Services under systemd: delegated, refused, notify, socket activation, check, the .deb.
# Sourced by ../suite, which defines ok/fail/note/poll/show/unit_info/procs_in/find_proc.

# 1. Delegate=yes: synwire-run moves into <unit>/supervisor, the agent into
#    <unit>/synwire/agents/<uuid>; `systemctl stop` leaves neither process nor cgroup.
t_delegated() {
    local name=delegated-service u=syn-deleg.service ucg=/system.slice/syn-deleg.service
    if ! timeout 120 systemctl start "$u"; then
        fail $name "systemctl start $u failed: $(unit_info $u)"
        return
    fi
    local main_pid main_cg
    main_pid=$(show $u MainPID)
    if ! poll 50 find_proc "$main_pid" sleep; then
        fail $name "no agent (sleep) under synwire-run (MainPID $main_pid): $(unit_info $u); processes in the unit: $(procs_in "$cg$ucg" | tr '\n' '|')"
        timeout 60 systemctl stop "$u"
        return
    fi
    local agent_pid=$found_pid agent_cg=$found_cg
    main_cg=$(sed -n 's/^0:://p' /proc/$main_pid/cgroup)
    procs_in "$cg$ucg" | note
    { echo "xattrs of $cg$ucg:"; getfattr -d -m - "$cg$ucg" 2>&1; } | grep -v '^$' | note
    local err=""
    [[ "$agent_cg" =~ ^$ucg/synwire/agents/[^/]+$ ]] ||
        err+="agent $agent_pid in $agent_cg, not $ucg/synwire/agents/<uuid>; "
    [[ "$main_cg" == "$ucg/supervisor" ]] ||
        err+="synwire-run (MainPID $main_pid, $(cat /proc/$main_pid/comm)) in $main_cg, not $ucg/supervisor; "
    timeout 60 systemctl stop "$u" || err+="systemctl stop failed; "
    echo "after stop: $(unit_info $u)" | note
    [[ ! -e "$cg$ucg" ]] || err+="$ucg still exists after stop: $(find "$cg$ucg" -type d | tr '\n' ' '); "
    [[ ! -e /proc/$agent_pid ]] || err+="agent $agent_pid still running after stop; "
    [[ ! -e /proc/$main_pid ]] || err+="synwire-run $main_pid still running after stop; "
    no_stray_cgroups >/dev/null || err+="$(no_stray_cgroups); "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 2. No Delegate=: refused with exit 125, the journal names Delegate=, nothing created.
t_not_delegated() {
    local name=undelegated-service-refused u=syn-nodeleg.service
    local err=""
    if timeout 120 systemctl start "$u" 2>/dev/null; then
        err+="systemctl start succeeded; "
    fi
    local status
    status=$(show $u ExecMainStatus)
    [[ "$status" == 125 ]] || err+="exit status $status, not 125; "
    # The journal gets stderr through a stream: poll until the line is there.
    if ! poll 50 eval "journalctl -q -u $u -o cat --no-pager | grep -q 'Delegate='"; then
        err+="journal shows no line naming Delegate=: $(journalctl -q -u $u -o cat --no-pager | tail -n 5 | tr '\n' '|'); "
    fi
    journalctl -q -u $u -o cat --no-pager | grep -v '^$' | tail -n 4 | note
    [[ ! -e $cg/system.slice/synwire ]] || err+="/sys/fs/cgroup/system.slice/synwire was created; "
    no_stray_cgroups >/dev/null || err+="$(no_stray_cgroups); "
    [[ ! -e $cg/system.slice/syn-nodeleg.service ]] || err+="unit cgroup left: $(find $cg/system.slice/syn-nodeleg.service -type d | tr '\n' ' '); "
    systemctl reset-failed "$u" 2>/dev/null
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 3. Type=notify, NotifyAccess=all: READY=1 from the agent makes the unit active.
t_notify() {
    local name=notify-ready-through-wrapper u=syn-notify.service
    local err=""
    if ! timeout 120 systemctl start "$u"; then
        fail $name "systemctl start failed: $(unit_info $u)"
        systemctl reset-failed "$u" 2>/dev/null
        return
    fi
    local state
    state=$(systemctl is-active "$u")
    [[ "$state" == active ]] || err+="is-active says $state; "
    find_proc "$(show $u MainPID)" sleep && echo "agent $found_pid in $found_cg" | note
    timeout 60 systemctl stop "$u" || err+="systemctl stop failed; "
    [[ ! -e "$cg/system.slice/$u" ]] || err+="unit cgroup left after stop; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 4. Socket activation: with --preserve-fds 1, the agent gets fd 3 and LISTEN_PID = its own PID.
t_socket() {
    local name=socket-activation-listen-pid u=syn-sock.service
    local err="" line
    timeout 60 systemctl start syn-sock.socket || { fail $name "cannot start syn-sock.socket"; return; }
    if ! timeout 120 systemctl start "$u"; then
        fail $name "systemctl start failed: $(unit_info $u)"
        systemctl stop syn-sock.socket
        return
    fi
    if ! poll 50 eval "journalctl -q -u $u -o cat --no-pager | grep -q '^agent: '"; then
        err+="the agent printed nothing: $(unit_info $u); "
    else
        line=$(journalctl -q -u $u -o cat --no-pager | grep '^agent: ' | tail -n1)
        echo "$line" | note
        local lpid lfds self fd3
        lpid=$(sed -n 's/.*LISTEN_PID=\([^ ]*\).*/\1/p' <<<"$line")
        lfds=$(sed -n 's/.*LISTEN_FDS=\([^ ]*\).*/\1/p' <<<"$line")
        self=$(sed -n 's/.* self=\([^ ]*\).*/\1/p' <<<"$line")
        fd3=$(sed -n 's/.* fd3=\(.*\)$/\1/p' <<<"$line")
        [[ -n "$lpid" && "$lpid" == "$self" ]] || err+="LISTEN_PID=$lpid but the agent's PID is $self; "
        [[ "$lfds" == 1 ]] || err+="LISTEN_FDS=$lfds, not 1; "
        [[ "$fd3" == socket:* ]] || err+="fd 3 is '$fd3', not the socket; "
    fi
    timeout 60 systemctl stop "$u" syn-sock.socket || err+="systemctl stop failed; "
    [[ ! -e "$cg/system.slice/$u" ]] || err+="unit cgroup left after stop; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

# 5. `synwire-run check` inside a delegated system service.
t_check_system() {
    local name=check-in-delegated-service out rc
    out=$(timeout 120 systemd-run --quiet --wait --pipe -p Delegate=yes /usr/bin/synwire-run check 2>&1)
    rc=$?
    echo "$out" | note
    if [[ $rc != 0 ]]; then
        fail $name "exit status $rc"
    elif ! grep -qw OK <<<"$out"; then
        fail $name "no OK line"
    else
        ok $name
    fi
}

# 5b. The Debian package installs with dpkg (binary, conffile profiles, units, man page) and
#     `synwire-run check` passes from a delegated service afterwards.
t_deb() {
    local name=deb-installs-and-check-passes out rc err=""
    out=$(dpkg -i /usr/lib/synwire-test/synwire-run.deb 2>&1)
    rc=$?
    echo "$out" | note
    [[ $rc == 0 ]] || err+="dpkg -i exit $rc; "
    dpkg -s synwire-run 2>/dev/null | grep -q '^Status: install ok installed' || err+="not installed; "
    for f in /usr/bin/synwire-run /etc/synwire/profiles/small.toml /etc/synwire/profiles/agent.toml \
        /lib/systemd/system/synwire-agent@.service /usr/share/man/man1/synwire-run.1.gz; do
        [[ -e $f ]] || err+="$f missing; "
    done
    grep -qx /etc/synwire/profiles/small.toml /var/lib/dpkg/info/synwire-run.conffiles 2>/dev/null || err+="profiles are not conffiles; "
    systemctl daemon-reload
    systemctl cat synwire-agent@.service >/dev/null 2>&1 || err+="systemd does not see synwire-agent@.service; "
    out=$(timeout 120 systemd-run --quiet --wait --pipe -p Delegate=yes /usr/bin/synwire-run check 2>&1)
    rc=$?
    echo "$out" | note
    [[ $rc == 0 ]] || err+="check exit $rc after install; "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

t_delegated
t_not_delegated
t_notify
t_socket
t_check_system
t_deb
