/* The kernel's floor for a cgroup launch: mkdir a cgroup, clone3(CLONE_INTO_CGROUP) the command
 * into it, wait, rmdir. No limits, no statistics, no signals: what any launcher has to pay.
 * Built by bench/run (cc -O2 -static) as the floor row of its table; issue 11 sets synwire-run's
 * default profile at most 0.3 ms above it.
 * Usage: floor PARENT_CGROUP_DIR COMMAND [ARG...] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor PARENT_CGROUP_DIR COMMAND [ARG...]\n");
        return 125;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/floor-%d", argv[1], (int)getpid());
    if (mkdir(dir, 0755) != 0) { perror(dir); return 125; }
    int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0) { perror(dir); rmdir(dir); return 125; }
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (unsigned long long)cg;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    if (pid < 0) { perror("clone3"); rmdir(dir); return 125; }
    int status = 0;
    while (waitpid((pid_t)pid, &status, 0) < 0) {}
    close(cg);
    if (rmdir(dir) != 0) { perror(dir); return 125; }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
