/* Child: the PID-1 reaper and the final exec.
 *
 * The cloned child is PID 1 of the worker's pid namespace. A program that forks leaves orphans
 * that only PID 1 can reap, and PID 1 ignores every signal it has no handler for. So (when the
 * policy asks for it) the child starts one more process, after every restriction incl. seccomp
 * is in place (vfork-style, see child_reaper_spawn), which runs the program; PID 1 stays behind,
 * forwards TERM/INT/HUP/QUIT/USR1/USR2 to it, reaps everything, and when the program exits
 * reports its raw wait status on the status pipe and exits (the kernel then kills whatever is
 * left in the namespace). No helper binary and no toolchain inside the jail are needed. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t program_pid;

static void forward(int sig) {
    if (program_pid > 0) kill(program_pid, sig);
}

static void raw_setmask_empty(void) {
    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

static void install_forwarders(void) {
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static void write_status(int fd, int status) {
    int32_t v = status;
    while (write(fd, &v, sizeof v) < 0 && errno == EINTR) {}
}

static __attribute__((noreturn)) void reap_forever(pid_t program, int status_fd) {
    for (;;) {
        int st = 0;
        pid_t p = (pid_t)syscall(SYS_wait4, -1, &st, 0, NULL);
        if (p < 0 && errno == EINTR) continue;
        if (p < 0) _exit(127); /* ECHILD: the program is gone and was already reported */
        if (p != program) continue; /* an orphan: reaped, nothing else to do */
        write_status(status_fd, st);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
}

/* The program is started vfork-style (CLONE_VM | CLONE_VFORK on a stack of its own): it borrows
 * this process's memory until its execve, and this process sleeps until then. A plain fork would
 * copy the whole address space inherited from the supervisor (hundreds of mappings) only for
 * execve to throw the copy away: about half of the spawn time. Safe because the program side
 * writes nothing but its own stack (and errno) before execve or _exit, and the reaper does not
 * run meanwhile. Every restriction (ids, caps, no_new_privs, Landlock, seccomp) is already in
 * place and inherited; the seccomp profile allows clone without namespace flags. */
int child_reaper_spawn(int (*program)(void *), void *arg, int err_fd, int status_fd) {
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return errno;
    int pid = clone(program, (char *)stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
    if (pid < 0) return errno;
    /* Back here: the program exec'd (or failed and wrote its record on err_fd, then exited). */
    program_pid = (pid_t)pid;
    close(err_fd); /* the parent sees EOF once the program exec'd */
    if (status_fd > 0) syscall(SYS_close_range, 0U, (unsigned)status_fd - 1, 0U);
    syscall(SYS_close_range, (unsigned)status_fd + 1, ~0U, 0U);
    install_forwarders();
    raw_setmask_empty();
    reap_forever((pid_t)pid, status_fd);
}

/* The blocked mask is inherited by execve: unblock everything (raw rt_sigprocmask also
 * unblocks glibc's 32/33). Dispositions need no reset: handlers are reset by execve, and no
 * signal is ignored, because the spawner that cloned us runs with every disposition SIG_DFL
 * (cjail_clone's contract) and the reaper installs its forwarders only after this exec. */
int child_signals_default(void) {
    raw_setmask_empty();
    return 0;
}

int child_exec(const struct cjail_spec *s) {
    int last = ENOENT;
    for (uint32_t i = 0; i < s->exec_path_count; i++) {
        execve(s->exec_paths[i], s->argv, s->envp);
        if (errno != ENOENT) last = errno;
    }
    return last;
}

void child_report(int err_fd, int step, int err, int index) {
    struct cjail_error rec = {.magic = CJAIL_ERROR_MAGIC, .step = step, .err = err, .index = index};
    while (write(err_fd, &rec, sizeof rec) < 0 && errno == EINTR) {}
}
