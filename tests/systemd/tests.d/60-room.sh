# Processes in the way (issue 10, item 2), under a real systemd: real OCI containers started by
# Debian's crun and runc (a busybox bundle whose entrypoint is the static synwire-run, cgroup
# namespace, cgroup2 mounted read-write, the container's own memory limit as the ceiling), alone
# and beside a shell and a sidecar; and a Delegate=yes service whose start script runs
# synwire-run without `exec`. Sourced by ../suite.

# The agent's report: its cgroup line, its memory.max and pids.max, and its launcher's cgroup.
room_agent='l=$(grep ^0:: /proc/self/cgroup); echo "agent $l"; c=/sys/fs/cgroup${l#0::};
echo "memory.max $(cat $c/memory.max)"; echo "pids.max $(cat $c/pids.max)";
echo "launcher $(grep ^0:: /proc/$PPID/cgroup)"; echo "ceiling $(cat /sys/fs/cgroup/memory.max)"'

# make_bundle DIR ENTRYPOINT-JSON: a busybox rootfs with synwire-run at /synwire-run and an OCI
# config whose process.args is ENTRYPOINT-JSON (a JSON array), 768 MiB memory limit.
make_bundle() {
    local b=$1 args=$2 a
    rm -rf "$b"
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp" "$b/out"
    cp /bin/busybox "$b/rootfs/bin/busybox"
    for a in sh cat grep sleep cut echo kill ls; do ln -s busybox "$b/rootfs/bin/$a"; done
    cp /usr/bin/synwire-run "$b/rootfs/synwire-run"
    cat >"$b/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $args,
    "env": ["PATH=/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    },
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs"},
  "hostname": "agentbox",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]},
    {"destination": "/out", "type": "bind", "source": "$b/out", "options": ["rbind", "rw"]}
  ],
  "linux": {
    "resources": {"memory": {"limit": 805306368}},
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"}]
  }
}
EOF
}

# check_container NAME RUNTIME OUTPUT RC ORCHESTRATED: the agent ran in /synwire/agents/<uuid> of
# the container's cgroup namespace with small's limits, its launcher in /init; with an
# orchestrator, the shell and its sidecar were moved into /init too.
check_container() {
    local name=$1 rt=$2 out=$3 rc=$4 orch=$5 err=""
    echo "$out" | note
    [[ $rc == 0 ]] || err+="$rt exit $rc; "
    grep -qE '^agent 0::/synwire/agents/[0-9a-f-]{36}$' <<<"$out" || err+="agent not in /synwire/agents/<uuid>; "
    grep -qx 'memory.max 536870912' <<<"$out" || err+="memory.max is not small's 512 MiB; "
    grep -qx 'pids.max 64' <<<"$out" || err+="pids.max is not small's 64; "
    grep -qx 'launcher 0::/init' <<<"$out" || err+="synwire-run did not run from /init; "
    grep -qx 'ceiling 805306368' <<<"$out" || err+="the container's own memory.max (its root) is not the runtime's 768 MiB; "
    if [[ $orch == 1 ]]; then
        grep -qx 'orchestrator 0::/init' <<<"$out" || err+="the container's shell was not moved into /init; "
        grep -qx 'sidecar 0::/init' <<<"$out" || err+="the sidecar was not moved into /init; "
    fi
    grep -q '"outcome": *"exited"' "$b/out/stats.json" 2>/dev/null || err+="no exited outcome in the statistics: $(cat "$b/out/stats.json" 2>&1 | head -c 300); "
    [[ -z "$err" ]] && ok "$name" || fail "$name" "$err"
}

# t_container RUNTIME ORCHESTRATED: synwire-run as the entrypoint (0) or started by a shell that
# stays beside it with a sidecar (1), in a container of RUNTIME with the systemd cgroup driver.
t_container() {
    local rt=$1 orch=$2 name b out rc args id
    name=container-$rt-entrypoint
    [[ $orch == 1 ]] && name=container-$rt-orchestrator
    b=/tmp/bundle-$rt-$orch
    id=syn-$rt-$orch
    if [[ $orch == 1 ]]; then
        # The shell stays in the container's cgroup beside synwire-run, with a sidecar.
        args='["/bin/sh", "/orchestrate"]'
    else
        args='["/synwire-run", "--profile", "small", "--stats-file", "/out/stats.json", "--", "/bin/sh", "/agent"]'
    fi
    make_bundle "$b" "$args"
    printf '%s\n' "$room_agent" >"$b/rootfs/agent"
    cat >"$b/rootfs/orchestrate" <<'EOF'
sleep 1000 &
side=$!
/synwire-run --profile small --stats-file /out/stats.json -- /bin/sh /agent
rc=$?
echo "orchestrator $(grep ^0:: /proc/self/cgroup)"
echo "sidecar $(grep ^0:: /proc/$side/cgroup)"
kill $side
exit $rc
EOF
    # --no-pivot: the VM's root is the initramfs, which pivot_root(2) refuses (EINVAL).
    out=$(cd "$b" && timeout 120 "$rt" --systemd-cgroup run --no-pivot --bundle "$b" "$id" 2>&1)
    rc=$?
    "$rt" delete -f "$id" >/dev/null 2>&1
    check_container "$name" "$rt" "$out" "$rc" "$orch"
    # Nothing of the container or its agent may be left: no unit, no process in a scope of it.
    local left
    left=$(systemctl list-units --all --plain --no-legend "*$id*" 2>/dev/null)
    [[ -z "$left" ]] || fail "$name-left-nothing" "units left for $id: $left"
}

# A Delegate=yes service whose start script runs synwire-run without exec and goes on after it:
# the shell is moved into <unit>/supervisor beside synwire-run, the agent runs in
# <unit>/synwire/agents/<uuid>, and the script sees synwire-run's exit status.
t_start_script() {
    local name=delegated-start-script-without-exec out rc err=""
    # A script file: systemd-run would expand $ on its command line.
    cat >/tmp/start-script.sh <<'EOF'
/usr/bin/synwire-run -v -q --profile small -- /bin/sh -c "cat /proc/self/cgroup; echo shell \$(grep ^0:: /proc/$$/cgroup)"
echo after=$?
EOF
    out=$(timeout 120 systemd-run --quiet --wait --pipe -p Delegate=yes /bin/sh /tmp/start-script.sh 2>&1)
    rc=$?
    echo "$out" | note
    [[ $rc == 0 ]] || err+="exit $rc; "
    grep -qx 'after=0' <<<"$out" || err+="the script did not see synwire-run exit 0; "
    grep -qE '^0::/system.slice/run-[^/]+\.service/synwire/agents/[0-9a-f-]{36}$' <<<"$out" || err+="the agent is not in <unit>/synwire/agents/<uuid>; "
    grep -qE '^shell 0::/system.slice/run-[^/]+\.service/supervisor$' <<<"$out" || err+="the script's shell was not moved into <unit>/supervisor; "
    no_stray_cgroups >/dev/null || err+="$(no_stray_cgroups); "
    [[ -z "$err" ]] && ok $name || fail $name "$err"
}

for rt in crun runc; do
    if command -v $rt >/dev/null; then
        echo "# $rt $($rt --version 2>&1 | head -n1)"
        t_container $rt 0
        t_container $rt 1
    else
        fail container-$rt-entrypoint "$rt is not installed in the image"
    fi
done
t_start_script
