# uid 1000 in its own user manager (started as a unit, no login session).
# Sourced by ../suite.

# The user manager of uid 1000, started as a unit (no login session needed).
as_user() {
    runuser -u user -- env XDG_RUNTIME_DIR=/run/user/1000 \
        DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus "$@"
}
start_user_manager() {
    if ! timeout 120 systemctl start user@1000.service; then
        echo "user@1000.service did not start: $(unit_info user@1000.service)"
        return 1
    fi
    user_ready=1
}

# 6. uid 1000 in its own user manager, a transient service with Delegate=yes: the agent lands in
#    that user's user@1000.service subtree (user-agent-inside-user-manager), and inside the unit,
#    <unit>/synwire/agents/<uuid> (user-delegated-service-placement), so that the unit accounts for
#    it: where the user manager marks the unit (user.delegate) synwire-run sees the mark; systemd
#    252 marks nothing, and synwire-run asks the user manager for the unit's Delegate property.
#    (Until the D-Bus question, an unmarked unit got the sibling rule: app.slice/synwire/agents.)
#    The marker is read in the same unit, just before, for the record.
t_user() {
    local name=user-agent-inside-user-manager out rc line marked
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; fail user-delegated-service-placement "no user manager"; return; }
    out=$(as_user timeout 120 systemd-run --user --quiet --wait --pipe -p Delegate=yes /bin/sh -c \
        'c=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)
         if getfattr -n user.delegate "$c" >/dev/null 2>&1 || getfattr -n trusted.delegate "$c" >/dev/null 2>&1; then
             echo marked; else echo unmarked; fi
         exec /usr/bin/synwire-run -- /bin/cat /proc/self/cgroup' 2>&1)
    rc=$?
    echo "$out" | note
    local prefix=/user.slice/user-1000.slice/user@1000.service/
    line=$(grep '^0::' <<<"$out")
    marked=$(grep -xE 'marked|unmarked' <<<"$out")
    if [[ $rc != 0 ]]; then
        fail $name "exit status $rc"
        fail user-delegated-service-placement "exit status $rc"
        return
    fi
    if [[ "$line" == "0::$prefix"* ]]; then ok $name; else fail $name "the agent ran in ${line#0::}"; fi
    local want="^0::${prefix}app.slice/run-[^/]+\.service/synwire/agents/[^/]+$"
    if [[ "$line" =~ $want ]]; then
        ok user-delegated-service-placement
    else
        fail user-delegated-service-placement "unit $marked, the agent ran in ${line#0::}, expected $want"
    fi
}

# 7. uid 1000, a transient user service without Delegate=: whatever synwire-run decides, the agent
#    never leaves user@1000.service (either it lands inside, or synwire-run refuses with 125).
t_user_undelegated() {
    local name=user-manager-undelegated-service out rc
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; return; }
    out=$(as_user timeout 120 systemd-run --user --quiet --wait --pipe \
        /usr/bin/synwire-run -- /bin/cat /proc/self/cgroup 2>&1)
    rc=$?
    echo "$out" | note
    local prefix=/user.slice/user-1000.slice/user@1000.service/
    if [[ $rc == 125 ]] && grep -q 'Delegate=' <<<"$out"; then
        echo "refused with 125" | note; ok $name
    elif [[ $rc == 0 ]] && grep -qE "^0::$prefix.*/synwire/agents/[^/]+\$" <<<"$out"; then
        echo "ran inside the user manager" | note; ok $name
    else
        fail $name "exit status $rc, cgroup line: $(grep '^0::' <<<"$out")"
    fi
}

# 8. `synwire-run check` as uid 1000 in a delegated user service.
t_check_user() {
    local name=check-in-user-manager out rc
    [[ -n "$user_ready" ]] || { fail $name "no user manager"; return; }
    out=$(as_user timeout 120 systemd-run --user --quiet --wait --pipe -p Delegate=yes \
        /usr/bin/synwire-run check 2>&1)
    rc=$?
    echo "$out" | note
    if [[ $rc != 0 ]]; then
        fail $name "exit status $rc"
    elif ! grep -qw OK <<<"$out"; then
        fail $name "no OK line"
    elif ! grep -q 'placement.*delegated unit' <<<"$out"; then
        # As a run does, check asks the user manager about Delegate= (no mark on systemd 252).
        fail $name "the placement line does not say the Delegate=yes unit nests"
    else
        ok $name
    fi
}

start_user_manager 2>&1 | note
[[ "$(systemctl is-active user@1000.service)" == active ]] && user_ready=1
t_user
t_user_undelegated
t_check_user
