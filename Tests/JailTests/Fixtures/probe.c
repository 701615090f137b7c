/* Escape probe, run inside the jail as /app/probe ATTACK [ARG]. Each attack tries one thing the
 * jail must prevent and prints one line: "DENIED <attack> <detail>" (exit 0) when the attempt
 * failed, "ESCAPED <attack> <detail>" (exit 1) when it worked. In the spirit of bubblewrap's
 * tests/try-syscall.c. Compiled by the tests with the system cc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *attack;
static int denied(const char *d) { printf("DENIED %s %s\n", attack, d); return 0; }
static int escaped(const char *d) { printf("ESCAPED %s %s\n", attack, d); return 1; }
/* r == -1 means the kernel refused: that is what we want. */
static int expect_fail(long r) {
    char b[96];
    if (r == -1) { snprintf(b, sizeof b, "errno=%d(%s)", errno, strerror(errno)); return denied(b); }
    snprintf(b, sizeof b, "returned %ld", r);
    return escaped(b);
}
static int expect_errno(long r, int want) {
    char b[96];
    snprintf(b, sizeof b, "r=%ld errno=%d want=%d", r, r == -1 ? errno : 0, want);
    return (r == -1 && errno == want) ? denied(b) : escaped(b);
}
/* Runs f in a child: being killed (SIGSYS) or failing counts as denied. */
static int in_child(long (*f)(void)) {
    pid_t p = fork();
    if (p == 0) _exit(f() == -1 ? 0 : 42);
    int st = 0;
    waitpid(p, &st, 0);
    char b[64];
    snprintf(b, sizeof b, "status=0x%x", st);
    if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0)) return denied(b);
    return escaped(b);
}
static long x32_getpid(void) { return syscall(0x40000000 | 39); }
static long i386_getpid(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
    return r < 0 ? -1 : r;
}
static int open_fails(const char *p, int flags) { return expect_fail(open(p, flags | O_CREAT, 0644)); }

static int status_line(const char *key, const char *want) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key)) == 0) {
            fclose(f);
            return strstr(line, want) ? denied(line) : escaped(line);
        }
    }
    return escaped("no such status line");
}

static int only_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int self = dirfd(d), bad = 0;
    char b[128] = "";
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd > 3 && fd != self) { bad = 1; snprintf(b, sizeof b, "fd %d open", fd); }
    }
    return bad ? escaped(b) : denied("fds 0-3 only");
}

static int few_pids(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0, maxp = 0;
    while ((e = readdir(d))) { int p = atoi(e->d_name); if (p > 0) { n++; if (p > maxp) maxp = p; } }
    char b[64];
    snprintf(b, sizeof b, "%d processes, max pid %d", n, maxp);
    return (n <= 4 && maxp < 16) ? denied(b) : escaped(b);
}

static int only_lo(void) {
    FILE *f = fopen("/proc/net/dev", "r");
    char line[256];
    int others = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!c) continue;
        *c = 0;
        char *n = line; while (*n == ' ') n++;
        if (strcmp(n, "lo") != 0) others++;
    }
    return others ? escaped("non-lo interface") : denied("lo only");
}

static int connect_host(const char *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return expect_fail(s);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port)), .sin_addr.s_addr = htonl(0x7f000001)};
    return expect_fail(connect(s, (struct sockaddr *)&a, sizeof a));
}

static int fork_bomb(void) {
    for (int i = 0; i < 100000; i++) { pid_t p = fork(); if (p == 0) { pause(); _exit(0); } }
    sleep(30);
    return escaped("fork bomb survived");
}

static int mem_bomb(void) {
    for (;;) { char *p = malloc(1 << 20); if (!p) break; memset(p, 1, 1 << 20); }
    return escaped("malloc failed before the OOM killer acted");
}

static int tmp_fill(const char *limit) {
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT, 0600);
    static char buf[1 << 16];
    long total = 0, n;
    memset(buf, 7, sizeof buf);
    while ((n = write(fd, buf, sizeof buf)) > 0) total += n;
    char b[96];
    snprintf(b, sizeof b, "wrote %ld bytes then errno=%d", total, errno);
    return (total <= atol(limit) && errno == ENOSPC) ? denied(b) : escaped(b);
}

static double now(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cpu_burn(const char *max_ratio) {
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    volatile unsigned long x = 0;
    while (now(CLOCK_MONOTONIC) - w0 < 1.0) x++;
    double ratio = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / (now(CLOCK_MONOTONIC) - w0);
    char b[64];
    snprintf(b, sizeof b, "cpu/wall=%.3f", ratio);
    return ratio <= atof(max_ratio) ? denied(b) : escaped(b);
}

static int read_file(const char *p) {
    int fd = open(p, O_RDONLY);
    if (fd < 0) return expect_fail(fd);
    char c;
    return expect_fail(read(fd, &c, 1) >= 0 ? 0 : -1);
}

static int suid_exec(void) {
    pid_t p = fork();
    if (p == 0) { execl("/app/probe-suid", "probe-suid", "euid", (char *)NULL); _exit(3); }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? escaped("euid 0 via setuid binary") : denied("setuid bit ignored");
}

static int kill_init(void) {
    kill(1, SIGKILL);
    usleep(100000);
    return kill(1, 0) == 0 ? denied("PID 1 ignores signals from inside") : escaped("PID 1 killed");
}

int main(int argc, char **argv) {
    attack = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(attack, "euid")) return geteuid() == 0 ? 0 : 1;
    if (!strcmp(attack, "ok")) { printf("OK\n"); return 0; }
    if (!strcmp(attack, "sleep")) { sleep(atoi(arg)); return 0; }
    if (!strcmp(attack, "write-secret")) { int fd = open("/data/secret", O_WRONLY | O_CREAT, 0600); write(fd, "s3cret", 6); close(fd); printf("READY\n"); sleep(30); return 0; }
    if (!strcmp(attack, "ptrace")) return expect_fail(syscall(SYS_ptrace, 16 /*ATTACH*/, 1, 0, 0));
    if (!strcmp(attack, "process_vm_readv")) { char b[8]; struct iovec l = {b, 8}, r = {(void *)0x400000, 8}; return expect_fail(process_vm_readv(1, &l, 1, &r, 1, 0)); }
    if (!strcmp(attack, "process_vm_writev")) { char b[8] = {0}; struct iovec l = {b, 8}, r = {(void *)0x400000, 8}; return expect_fail(process_vm_writev(1, &l, 1, &r, 1, 0)); }
    if (!strcmp(attack, "mount")) return expect_fail(mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(attack, "umount")) return expect_fail(umount2("/proc", MNT_DETACH));
    if (!strcmp(attack, "fsopen")) return expect_fail(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(attack, "fsconfig")) return expect_fail(syscall(SYS_fsconfig, 3, 6, NULL, NULL, 0));
    if (!strcmp(attack, "fsmount")) return expect_fail(syscall(SYS_fsmount, 3, 0, 0));
    if (!strcmp(attack, "move_mount")) return expect_fail(syscall(SYS_move_mount, AT_FDCWD, "/tmp", AT_FDCWD, "/data", 0));
    if (!strcmp(attack, "open_tree")) return expect_fail(syscall(SYS_open_tree, AT_FDCWD, "/", 1 /*OPEN_TREE_CLONE*/));
    if (!strcmp(attack, "mount_setattr")) { uint64_t a[4] = {0}; return expect_fail(syscall(SYS_mount_setattr, AT_FDCWD, "/usr", 0, a, sizeof a)); }
    if (!strcmp(attack, "pivot_root")) return expect_fail(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(attack, "chroot")) return expect_fail(chroot("/tmp"));
    if (!strcmp(attack, "unshare_user")) return expect_fail(unshare(CLONE_NEWUSER));
    if (!strcmp(attack, "unshare_mount")) return expect_fail(unshare(CLONE_NEWNS));
    if (!strcmp(attack, "setns")) { int fd = open("/proc/1/ns/mnt", O_RDONLY); return expect_fail(fd < 0 ? -1 : setns(fd, 0)); }
    if (!strcmp(attack, "clone_newuser")) { long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); if (r == 0) _exit(0); return expect_fail(r); }
    if (!strcmp(attack, "clone_newnet")) { long r = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0); if (r == 0) _exit(0); return expect_fail(r); }
    if (!strcmp(attack, "clone3_enosys")) { uint64_t args[11] = {0}; args[4] = SIGCHLD; long r = syscall(SYS_clone3, args, sizeof args); if (r == 0) _exit(0); return expect_errno(r, ENOSYS); }
    if (!strcmp(attack, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); return expect_fail(syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a)); }
    if (!strcmp(attack, "perf_event_open")) { struct perf_event_attr a = {.type = PERF_TYPE_SOFTWARE, .size = sizeof a}; return expect_fail(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0)); }
    if (!strcmp(attack, "keyctl")) return expect_fail(syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3, 0));
    if (!strcmp(attack, "add_key")) return expect_fail(syscall(SYS_add_key, "user", "x", "y", 1, -3));
    if (!strcmp(attack, "request_key")) return expect_fail(syscall(SYS_request_key, "user", "x", NULL, -3));
    if (!strcmp(attack, "userfaultfd")) return expect_fail(syscall(SYS_userfaultfd, 0));
    if (!strcmp(attack, "io_uring_setup")) { char p[120] = {0}; return expect_fail(syscall(SYS_io_uring_setup, 4, p)); }
    if (!strcmp(attack, "personality")) return expect_fail(personality(READ_IMPLIES_EXEC));
    if (!strcmp(attack, "kexec_load")) return expect_fail(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(attack, "init_module")) return expect_fail(syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(attack, "finit_module")) return expect_fail(syscall(SYS_finit_module, 0, "", 0));
    if (!strcmp(attack, "delete_module")) return expect_fail(syscall(SYS_delete_module, "ext4", 0));
    if (!strcmp(attack, "syslog")) { char b[64]; return expect_fail(syscall(SYS_syslog, 3, b, sizeof b)); }
    if (!strcmp(attack, "tiocsti")) { char c = 'x'; return expect_errno(ioctl(0, TIOCSTI, &c), EPERM); }
    if (!strcmp(attack, "tiocsti_highbits")) { char c = 'x'; return expect_errno(syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c), EPERM); }
    if (!strcmp(attack, "tioclinux")) { char c = 3; return expect_errno(syscall(SYS_ioctl, 0, 0xdead00000000UL | TIOCLINUX, &c), EPERM); }
    if (!strcmp(attack, "x32_abi")) return in_child(x32_getpid);
    if (!strcmp(attack, "i386_abi")) return in_child(i386_getpid);
    if (!strcmp(attack, "open_by_handle_at")) return expect_fail(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    if (!strcmp(attack, "sethostname")) return expect_fail(sethostname("pwned", 5));
    if (!strcmp(attack, "vsock")) return expect_fail(socket(40, SOCK_STREAM, 0));
    if (!strcmp(attack, "read_shadow")) return read_file("/etc/shadow");
    if (!strcmp(attack, "read_root")) return read_file("/root/.bashrc");
    if (!strcmp(attack, "read_host_environ")) return read_file("/proc/1/environ");
    if (!strcmp(attack, "read_proc1_mem")) return read_file("/proc/1/mem");
    if (!strcmp(attack, "read_path")) return read_file(arg);
    if (!strcmp(attack, "write_usr")) return open_fails("/usr/bin/pwned", O_WRONLY);
    if (!strcmp(attack, "write_app")) return open_fails("/app/pwned", O_WRONLY);
    if (!strcmp(attack, "write_root")) return open_fails("/pwned", O_WRONLY);
    if (!strcmp(attack, "write_etc")) return open_fails("/etc/passwd", O_WRONLY | O_APPEND);
    if (!strcmp(attack, "proc_sys_write")) return expect_fail(open("/proc/sys/kernel/core_pattern", O_WRONLY));
    if (!strcmp(attack, "sysrq_trigger")) return expect_fail(open("/proc/sysrq-trigger", O_WRONLY));
    if (!strcmp(attack, "host_processes")) return few_pids();
    if (!strcmp(attack, "connect_host")) return connect_host(arg);
    if (!strcmp(attack, "interfaces")) return only_lo();
    if (!strcmp(attack, "caps_eff")) return status_line("CapEff:", "0000000000000000");
    if (!strcmp(attack, "caps_prm")) return status_line("CapPrm:", "0000000000000000");
    if (!strcmp(attack, "caps_bnd")) return status_line("CapBnd:", "0000000000000000");
    if (!strcmp(attack, "caps_amb")) return status_line("CapAmb:", "0000000000000000");
    if (!strcmp(attack, "no_new_privs")) return status_line("NoNewPrivs:", "1");
    if (!strcmp(attack, "seccomp_on")) return status_line("Seccomp:", "2");
    if (!strcmp(attack, "fds")) return only_fds();
    if (!strcmp(attack, "setuid0")) return expect_fail(setuid(0));
    if (!strcmp(attack, "mknod")) return expect_fail(mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)));
    if (!strcmp(attack, "suid_binary")) return suid_exec();
    if (!strcmp(attack, "kill_init")) return kill_init();
    if (!strcmp(attack, "kill_pid")) return expect_fail(kill(atoi(arg), SIGKILL));
    if (!strcmp(attack, "forkbomb")) return fork_bomb();
    if (!strcmp(attack, "membomb")) return mem_bomb();
    if (!strcmp(attack, "tmpfill")) return tmp_fill(arg);
    if (!strcmp(attack, "cpuburn")) return cpu_burn(arg);
    printf("UNKNOWN %s\n", attack);
    return 2;
}
