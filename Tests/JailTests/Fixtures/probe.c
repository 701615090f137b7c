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
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
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
/* r == -1 means the kernel refused. Used only where the refusal itself is the point and no
 * single layer owns it (several layers stack: DAC, mounts, no capabilities). */
static int expect_fail(long r) {
    char b[96];
    if (r == -1) { snprintf(b, sizeof b, "errno=%d(%s)", errno, strerror(errno)); return denied(b); }
    snprintf(b, sizeof b, "returned %ld", r);
    return escaped(b);
}
/* The refusal must come with exactly `want`: the errno names the layer (ENOENT: not mounted,
 * EROFS: read-only mount, EACCES from Landlock...). Anything else, success included, is an escape
 * from the layer the test claims to check. */
static int expect_errno(long r, int want) {
    char b[96];
    snprintf(b, sizeof b, "r=%ld errno=%d want=%d", r, r == -1 ? errno : 0, want);
    return (r == -1 && errno == want) ? denied(b) : escaped(b);
}
/* The test profile (JailHarness.testPolicyDir) is the default profile with defaultErrnoRet set to
 * EHWPOISON, an errno none of these syscalls returns by itself: seeing it proves that the seccomp
 * filter, and nothing else (missing capabilities, EBADF, the pid namespace...), refused the call.
 * Each call below is written so that, without the filter, it would succeed or fail differently. */
#define SECCOMP_ERRNO EHWPOISON
static int by_seccomp(long r) { return expect_errno(r, SECCOMP_ERRNO); }
/* Runs f in a child that must be killed by SIGSYS: the filter's bad-ABI action (kill process). A
 * plain failure (ENOSYS on a kernel without x32) or any other death is an escape from that check. */
static int killed_by_sigsys(long (*f)(void)) {
    pid_t p = fork();
    if (p == 0) { long r = f(); _exit(r == -1 ? 40 : 41); }
    int st = 0;
    waitpid(p, &st, 0);
    char b[64];
    snprintf(b, sizeof b, "status=0x%x", st);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS ? denied(b) : escaped(b);
}
static long x32_getpid(void) { return syscall(0x40000000 | 39); }
static long i386_getpid(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
    return r < 0 ? -1 : r;
}
/* ---- seccomp: every call the default profile must refuse, in a form that works without it ---- */
static long sc_ptrace(void) { /* seize our own child: allowed to a parent without the filter */
    pid_t c = fork();
    if (c == 0) { pause(); _exit(0); }
    long r = syscall(SYS_ptrace, 0x4206 /*PTRACE_SEIZE*/, c, 0, 0);
    int e = errno;
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    errno = e;
    return r;
}
static long sc_process_vm(int write) { /* on ourselves */
    char src[8] = "abcdefg", dst[8];
    struct iovec l = {write ? src : dst, 8}, r = {write ? dst : src, 8};
    return write ? process_vm_writev(getpid(), &l, 1, &r, 1, 0) : process_vm_readv(getpid(), &l, 1, &r, 1, 0);
}
static long sc_clone(unsigned long flags) {
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    return r;
}
static long sc_clone3(void) {
    uint64_t args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    long r = syscall(SYS_clone3, args, sizeof args);
    if (r == 0) _exit(0);
    if (r > 0) waitpid((pid_t)r, NULL, 0);
    return r;
}
static long sc_bpf(void) { /* a one-instruction socket filter ("return 0") */
    struct bpf_insn insns[2] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0}, {.code = BPF_JMP | BPF_EXIT}};
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = 2;
    a.license = (uint64_t)(uintptr_t)"GPL";
    return syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
}
static long sc_perf(void) { /* a software counter on ourselves, user space only */
    struct perf_event_attr a = {.type = PERF_TYPE_SOFTWARE, .size = sizeof a, .config = PERF_COUNT_SW_TASK_CLOCK,
                                .exclude_kernel = 1, .exclude_hv = 1};
    return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}
static long sc_pidfd_getfd(void) {
    int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0) return -2; /* pidfd_open is allowed: this is not the refusal under test */
    return syscall(SYS_pidfd_getfd, pfd, 1, 0);
}
static long sc_process_madvise(void) {
    int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0) return -2;
    static char page[4096] __attribute__((aligned(4096)));
    page[0] = 1;
    struct iovec v = {page, sizeof page};
    return syscall(SYS_process_madvise, pfd, &v, 1, 20 /*MADV_COLD*/, 0);
}
static long sc_io_uring_setup(void) { char p[120] = {0}; return syscall(SYS_io_uring_setup, 4, p); }
static long sc_socket(unsigned long family, int type, int proto) { return syscall(SYS_socket, family, type, proto); }
static long sc_socketpair(unsigned long family) { int sv[2]; return syscall(SYS_socketpair, family, SOCK_STREAM, 0, sv); }
static long sc_name_to_handle(void) {
    char buf[sizeof(unsigned int) * 2 + 128];
    unsigned int *h = (unsigned int *)buf;
    h[0] = 128; /* handle_bytes */
    int mnt;
    return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buf, &mnt, 0);
}

static int seccomp_attack(const char *a) {
    char buf[64];
    if (!strcmp(a, "ptrace")) return by_seccomp(sc_ptrace());
    if (!strcmp(a, "process_vm_readv")) return by_seccomp(sc_process_vm(0));
    if (!strcmp(a, "process_vm_writev")) return by_seccomp(sc_process_vm(1));
    if (!strcmp(a, "mount")) return by_seccomp(mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(a, "umount")) return by_seccomp(umount2("/proc", MNT_DETACH));
    if (!strcmp(a, "fsopen")) return by_seccomp(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(a, "fsconfig")) return by_seccomp(syscall(SYS_fsconfig, 3, 6, NULL, NULL, 0));
    if (!strcmp(a, "fsmount")) return by_seccomp(syscall(SYS_fsmount, 3, 0, 0));
    if (!strcmp(a, "fspick")) return by_seccomp(syscall(SYS_fspick, AT_FDCWD, "/tmp", 0));
    if (!strcmp(a, "move_mount")) return by_seccomp(syscall(SYS_move_mount, AT_FDCWD, "/tmp", AT_FDCWD, "/data", 0));
    /* without OPEN_TREE_CLONE open_tree is an O_PATH open that needs no privilege */
    if (!strcmp(a, "open_tree")) return by_seccomp(syscall(SYS_open_tree, AT_FDCWD, "/", 0));
    if (!strcmp(a, "mount_setattr")) { uint64_t at[4] = {0}; return by_seccomp(syscall(SYS_mount_setattr, AT_FDCWD, "/usr", 0, at, sizeof at)); }
    if (!strcmp(a, "pivot_root")) return by_seccomp(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(a, "chroot")) return by_seccomp(chroot("/tmp"));
    if (!strcmp(a, "unshare_user")) return by_seccomp(unshare(CLONE_NEWUSER)); /* unprivileged userns: allowed here */
    if (!strcmp(a, "unshare_mount")) return by_seccomp(unshare(CLONE_NEWNS));
    if (!strcmp(a, "setns")) { int fd = open("/proc/self/ns/uts", O_RDONLY); return by_seccomp(fd < 0 ? -2 : setns(fd, CLONE_NEWUTS)); }
    if (!strcmp(a, "clone_newuser")) return by_seccomp(sc_clone(CLONE_NEWUSER));
    if (!strcmp(a, "clone_newuser_highbits")) return by_seccomp(sc_clone(0xabcd00000000UL | CLONE_NEWUSER));
    if (!strcmp(a, "clone_newnet")) return by_seccomp(sc_clone(CLONE_NEWNET));
    if (!strcmp(a, "clone_newns")) return by_seccomp(sc_clone(CLONE_NEWNS));
    if (!strcmp(a, "clone3_enosys")) return expect_errno(sc_clone3(), ENOSYS); /* explicit ENOSYS rule */
    if (!strcmp(a, "bpf")) return by_seccomp(sc_bpf());
    if (!strcmp(a, "perf_event_open")) return by_seccomp(sc_perf());
    if (!strcmp(a, "keyctl")) return by_seccomp(syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -2 /*process*/, 1));
    if (!strcmp(a, "add_key")) return by_seccomp(syscall(SYS_add_key, "user", "probe", "y", 1, -2));
    if (!strcmp(a, "request_key")) return by_seccomp(syscall(SYS_request_key, "user", "probe", NULL, 0));
    if (!strcmp(a, "userfaultfd")) return by_seccomp(syscall(SYS_userfaultfd, 1 /*UFFD_USER_MODE_ONLY*/ | O_CLOEXEC));
    if (!strcmp(a, "io_uring_setup")) return by_seccomp(sc_io_uring_setup());
    if (!strcmp(a, "io_uring_enter")) return by_seccomp(syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0));
    if (!strcmp(a, "io_uring_register")) return by_seccomp(syscall(SYS_io_uring_register, 0, 0, NULL, 0));
    if (!strcmp(a, "personality")) return by_seccomp(personality(PER_LINUX | ADDR_NO_RANDOMIZE));
    if (!strcmp(a, "kexec_load")) return by_seccomp(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(a, "kexec_file_load")) return by_seccomp(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    if (!strcmp(a, "init_module")) return by_seccomp(syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(a, "finit_module")) return by_seccomp(syscall(SYS_finit_module, 0, "", 0));
    if (!strcmp(a, "delete_module")) return by_seccomp(syscall(SYS_delete_module, "probe_no_such_module", O_NONBLOCK));
    if (!strcmp(a, "syslog")) return by_seccomp(syscall(SYS_syslog, 10 /*SIZE_BUFFER*/, NULL, 0));
    if (!strcmp(a, "pidfd_getfd")) return by_seccomp(sc_pidfd_getfd());
    if (!strcmp(a, "process_madvise")) return by_seccomp(sc_process_madvise());
    if (!strcmp(a, "kcmp")) return by_seccomp(syscall(SYS_kcmp, getpid(), getpid(), 0 /*KCMP_FILE*/, 1, 1));
    if (!strcmp(a, "name_to_handle_at")) return by_seccomp(sc_name_to_handle());
    if (!strcmp(a, "open_by_handle_at")) return by_seccomp(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    if (!strcmp(a, "modify_ldt")) return by_seccomp(syscall(SYS_modify_ldt, 0, buf, sizeof buf)); /* read: harmless, allowed without */
    if (!strcmp(a, "iopl")) return by_seccomp(syscall(SYS_iopl, 3));
    if (!strcmp(a, "sethostname")) return by_seccomp(sethostname("pwned", 5));
    if (!strcmp(a, "clock_settime")) { struct timespec t = {0, 0}; return by_seccomp(clock_settime(CLOCK_REALTIME, &t)); }
    /* fd 0 is /dev/null: without the filter these fail with ENOTTY, so only EHWPOISON passes */
    if (!strcmp(a, "tiocsti")) { char c = 'x'; return by_seccomp(ioctl(0, TIOCSTI, &c)); }
    if (!strcmp(a, "tiocsti_highbits")) { char c = 'x'; return by_seccomp(syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c)); }
    if (!strcmp(a, "tioclinux")) { char c = 3; return by_seccomp(syscall(SYS_ioctl, 0, TIOCLINUX, &c)); }
    if (!strcmp(a, "tioclinux_highbits")) { char c = 3; return by_seccomp(syscall(SYS_ioctl, 0, 0xdead00000000UL | TIOCLINUX, &c)); }
    if (!strcmp(a, "x32_abi")) return killed_by_sigsys(x32_getpid);
    if (!strcmp(a, "i386_abi")) return killed_by_sigsys(i386_getpid);
    /* socket families: AF_VSOCK reaches the hypervisor (no netns covers it), AF_ALG the kernel
     * crypto API; the high-bit forms are the 64-bit-compare bypass (the kernel reads an int). */
    if (!strcmp(a, "vsock")) return by_seccomp(sc_socket(40, SOCK_STREAM, 0));
    if (!strcmp(a, "vsock_highbits")) return by_seccomp(sc_socket(0x100000028UL, SOCK_STREAM, 0));
    if (!strcmp(a, "vsock_highbits_dgram")) return by_seccomp(sc_socket(0xffffffff00000028UL, SOCK_DGRAM, 0));
    if (!strcmp(a, "af_alg")) return by_seccomp(sc_socket(38, SOCK_SEQPACKET, 0));
    if (!strcmp(a, "af_alg_highbits")) return by_seccomp(sc_socket(0x100000026UL, SOCK_SEQPACKET, 0));
    if (!strcmp(a, "af_packet")) return by_seccomp(sc_socket(17, SOCK_DGRAM, 0));
    if (!strcmp(a, "netlink_netfilter")) return by_seccomp(sc_socket(16, SOCK_RAW, 12 /*NETLINK_NETFILTER*/));
    if (!strcmp(a, "socketpair_inet")) return by_seccomp(sc_socketpair(2));
    if (!strcmp(a, "socketpair_vsock_highbits")) return by_seccomp(sc_socketpair(0x100000028UL));
    return -1; /* not a seccomp attack */
}

/* Positive controls: what the profile must still allow (else the attacks above prove nothing
 * about *which* calls are refused, and node/python would break). */
static int allowed_calls(void) {
    long r[] = {sc_socket(1, SOCK_STREAM, 0), sc_socket(2, SOCK_DGRAM, 0), sc_socket(10, SOCK_STREAM, 0),
                sc_socket(16, SOCK_RAW, 0 /*NETLINK_ROUTE*/), sc_socket(0x100000001UL, SOCK_STREAM, 0), sc_socketpair(1),
                sc_clone(0)};
    for (unsigned i = 0; i < sizeof r / sizeof r[0]; i++) {
        if (r[i] < 0) { char b[64]; snprintf(b, sizeof b, "call %u failed errno=%d", i, errno); return escaped(b); }
    }
    return denied("AF_UNIX/INET/INET6/NETLINK_ROUTE sockets, socketpair and plain clone work");
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

/* ---- network namespace, Landlock, misc ---- */
static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    return a;
}

/* Prints the network namespace, then stays alive `hold` seconds (so that a second worker started
 * meanwhile cannot be handed a recycled namespace inode). */
static int print_netns(const char *hold) {
    char b[64] = "";
    ssize_t n = readlink("/proc/self/ns/net", b, sizeof b - 1);
    if (n <= 0) return escaped("cannot read /proc/self/ns/net");
    b[n] = 0;
    printf("NETNS %s\n", b);
    fflush(stdout);
    sleep(atoi(hold));
    return 0;
}

/* The tests sequence workers through files the host writes into /data: polling a file keeps a
 * probe waiting however late the test gets to its next step (its task may be starved on a loaded
 * machine), so no check can pass only because the other side had already given up. */
static int wait_for_file(const char *path, int seconds) {
    for (int i = 0; i < seconds * 100; i++) {
        if (access(path, F_OK) == 0) return 1;
        usleep(10000);
    }
    return 0;
}

/* Binds UDP 127.0.0.1:port; a datagram to itself proves UDP works in the jail (Landlock only
 * handles TCP). Then READY; once the host says the other worker has sent (/data/go), every
 * datagram that arrived meanwhile is still queued on the socket: any one is an escape. */
static int udp_listen(const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loopback(atoi(port));
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) return escaped("cannot bind the UDP listener");
    char buf[16];
    struct timeval tv = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (sendto(s, "self", 4, 0, (struct sockaddr *)&a, sizeof a) != 4 || recv(s, buf, sizeof buf, 0) != 4)
        return escaped("control failed: no datagram to itself");
    printf("READY\n");
    fflush(stdout);
    if (!wait_for_file("/data/go", 120)) return escaped("the host never said go");
    usleep(100000);
    ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? escaped("a datagram from another worker arrived") : denied("nothing arrived from outside the namespace");
}

static int udp_send(const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loopback(atoi(port));
    int sent = 0;
    for (int i = 0; i < 20; i++) {
        if (sendto(s, "peer", 4, 0, (struct sockaddr *)&a, sizeof a) == 4) sent++;
        usleep(20000);
    }
    printf("SENT %d\n", sent);
    return 0;
}

static int abstract_addr(const char *name, struct sockaddr_un *u) {
    memset(u, 0, sizeof *u);
    u->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n + 1 > sizeof u->sun_path) n = sizeof u->sun_path - 1;
    memcpy(u->sun_path + 1, name, n); /* leading NUL: the abstract namespace */
    return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* Listens on an abstract unix name; connecting to it from inside (control) must work. */
static int abstract_listen(const char *name) {
    struct sockaddr_un u;
    int len = abstract_addr(name, &u);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&u, len) < 0 || listen(s, 4) < 0) return escaped("cannot listen");
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&u, len) < 0) return escaped("control failed: cannot reach itself");
    printf("READY\n");
    fflush(stdout);
    wait_for_file("/data/go", 120); /* listening until the other worker has tried */
    return 0;
}

/* The name lives in another worker's network namespace: not found here (ECONNREFUSED). */
static int abstract_connect(const char *name) {
    struct sockaddr_un u;
    int len = abstract_addr(name, &u);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    return expect_errno(connect(c, (struct sockaddr *)&u, len), ECONNREFUSED);
}

/* TCP to the host's loopback listener. With Landlock (denyTCP) connect fails with EACCES before
 * the network stack is involved; without it only the network namespace is left, and the jail's
 * own loopback has no listener: ECONNREFUSED. `want` names the layer. */
static int connect_host(const char *port, const char *want) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return escaped("socket failed");
    struct sockaddr_in a = loopback(atoi(port));
    return expect_errno(connect(s, (struct sockaddr *)&a, sizeof a), atoi(want));
}

/* Only Landlock refuses this: binding an ephemeral TCP port on the jail's own loopback needs no
 * privilege, and seccomp allows bind. */
static int tcp_bind(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return escaped("socket failed");
    struct sockaddr_in a = loopback(0);
    return expect_errno(bind(s, (struct sockaddr *)&a, sizeof a), EACCES);
}

/* Only Landlock refuses this too: /proc is mounted read-write and /proc/self/comm is ours, but
 * the Landlock rule for /proc is read-only. */
static int proc_comm_write(void) { return expect_errno(open("/proc/self/comm", O_WRONLY), EACCES); }

/* Every mount of the jail carries nosuid (shown on its own, apart from no_new_privs). */
static int nosuid_mounts(void) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        char mnt[512], opts[256];
        if (sscanf(line, "%*s %*s %*s %*s %511s %255s", mnt, opts) != 2) continue;
        n++;
        char o[258];
        snprintf(o, sizeof o, ",%s,", opts);
        if (!strstr(o, ",nosuid,")) { char b[800]; snprintf(b, sizeof b, "%s lacks nosuid (%s)", mnt, opts); return escaped(b); }
    }
    char b[64];
    snprintf(b, sizeof b, "%d mounts, all nosuid", n);
    return n > 0 ? denied(b) : escaped("no mountinfo");
}

/* Writes an increasing counter to /data/counter every 10 ms (suspend/resume test). */
__attribute__((noreturn)) static int counter(void) {
    int fd = open("/data/counter", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char b[32];
    for (unsigned long i = 0;; i++) {
        int n = snprintf(b, sizeof b, "%020lu\n", i);
        pwrite(fd, b, (size_t)n, 0);
        if (i == 0) { printf("READY\n"); fflush(stdout); }
        usleep(10000);
    }
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

/* Creates empty files in /tmp until the inode limit (nr_inodes) stops it. */
static int tmp_inodes(const char *limit) {
    char p[64];
    long n = 0;
    for (; n < 10 * atol(limit); n++) {
        snprintf(p, sizeof p, "/tmp/i%ld", n);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) break;
        close(fd);
    }
    char b[96];
    snprintf(b, sizeof b, "created %ld files then errno=%d", n, errno);
    return (n <= atol(limit) && errno == ENOSPC) ? denied(b) : escaped(b);
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

/* The host's identity through /proc: the kernel command line and the boot id must read as
 * nothing (masked) or not open at all. */
static int host_identity(void) {
    const char *paths[] = {"/proc/cmdline", "/proc/sys/kernel/random/boot_id"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) continue;
        char b[64];
        ssize_t n = read(fd, b, sizeof b);
        close(fd);
        if (n > 0) return escaped(paths[i]);
    }
    return denied("cmdline and boot_id read empty");
}

static int suid_exec(void) {
    pid_t p = fork();
    if (p == 0) { execl("/app/probe-suid", "probe-suid", "euid", (char *)NULL); _exit(3); }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? escaped("euid 0 via setuid binary") : denied("setuid bit ignored");
}

/* Host side, as root (the test runs it outside the jail): clones the host directory `src` as a
 * detached mount (keeping its flags: no nosuid) and attaches it at `dst` inside the mount
 * namespace of process `pid`. This bypasses the jail's nosuid on purpose, so that the next probe
 * can show no_new_privs holding on its own. */
static int inject(const char *src, const char *pid, const char *dst) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src, 1 /*OPEN_TREE_CLONE*/ | O_CLOEXEC);
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%s/ns/mnt", pid);
    int nfd = open(ns, O_RDONLY | O_CLOEXEC);
    if (tree < 0) { perror("inject: open_tree"); return 1; }
    if (nfd < 0) { perror("inject: open ns"); return 1; }
    if (setns(nfd, CLONE_NEWNS) < 0) { perror("inject: setns"); return 1; }
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, 4 /*MOVE_MOUNT_F_EMPTY_PATH*/) < 0) { perror("move_mount"); return 1; }
    printf("INJECTED\n");
    return 0;
}

/* In the jail: waits for the host to mount a tree without nosuid at /data/inject (holding the
 * root-owned setuid copy of this probe), shows that the mount really lacks nosuid, then execs the
 * setuid binary. Only no_new_privs can keep euid from becoming 0 here. */
static int nnp_suid(void) {
    if (mkdir("/data/inject", 0755) < 0) return escaped("cannot make /data/inject");
    printf("READY\n");
    fflush(stdout);
    if (!wait_for_file("/data/inject/probe-suid", 120)) return escaped("control failed: nothing was injected");
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024], opts[256] = "";
    while (f && fgets(line, sizeof line, f)) {
        char mnt[512], o[256];
        if (sscanf(line, "%*s %*s %*s %*s %511s %255s", mnt, o) == 2 && !strcmp(mnt, "/data/inject")) snprintf(opts, sizeof opts, ",%s,", o);
    }
    if (!opts[0]) return escaped("control failed: nothing mounted at /data/inject");
    if (strstr(opts, ",nosuid,")) return escaped("control failed: /data/inject is nosuid, so this would not test no_new_privs");
    pid_t p = fork();
    if (p == 0) { execl("/data/inject/probe-suid", "probe-suid", "euid", (char *)NULL); _exit(3); }
    int st = 0;
    waitpid(p, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return escaped("euid 0 via a setuid binary on a suid mount");
    return WIFEXITED(st) && WEXITSTATUS(st) == 1 ? denied("setuid bit ignored on a mount without nosuid: no_new_privs") : escaped("exec failed");
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
    /* Like write-secret, but holds until killed: a test that stops it decides when it ends,
     * never a sleep that a loaded machine can outlast. */
    if (!strcmp(attack, "write-secret-hold")) { int fd = open("/data/secret", O_WRONLY | O_CREAT, 0600); write(fd, "s3cret", 6); close(fd); printf("READY\n"); fflush(stdout); for (;;) pause(); }
    if (!strcmp(attack, "write-secret")) { int fd = open("/data/secret", O_WRONLY | O_CREAT, 0600); write(fd, "s3cret", 6); close(fd); printf("READY\n"); sleep(30); return 0; }
    int sc = seccomp_attack(attack);
    if (sc >= 0) return sc;
    if (!strcmp(attack, "allowed_calls")) return allowed_calls();
    if (!strcmp(attack, "read_shadow")) return read_file("/etc/shadow");
    if (!strcmp(attack, "read_root")) return read_file("/root/.bashrc");
    if (!strcmp(attack, "read_host_environ")) return read_file("/proc/1/environ");
    if (!strcmp(attack, "read_proc1_mem")) return read_file("/proc/1/mem");
    if (!strcmp(attack, "read_path")) return read_file(arg);
    if (!strcmp(attack, "host_identity")) return host_identity();
    if (!strcmp(attack, "write_usr")) return open_fails("/usr/bin/pwned", O_WRONLY);
    if (!strcmp(attack, "write_app")) return open_fails("/app/pwned", O_WRONLY);
    if (!strcmp(attack, "write_root")) return open_fails("/pwned", O_WRONLY);
    if (!strcmp(attack, "write_etc")) return open_fails("/etc/passwd", O_WRONLY | O_APPEND);
    if (!strcmp(attack, "proc_sys_write")) return expect_fail(open("/proc/sys/kernel/core_pattern", O_WRONLY));
    if (!strcmp(attack, "sysrq_trigger")) return expect_fail(open("/proc/sysrq-trigger", O_WRONLY));
    if (!strcmp(attack, "host_processes")) return few_pids();
    if (!strcmp(attack, "connect_host")) return connect_host(arg, argc > 3 ? argv[3] : "0");
    if (!strcmp(attack, "netns")) return print_netns(arg);
    if (!strcmp(attack, "udp_listen")) return udp_listen(arg);
    if (!strcmp(attack, "udp_send")) return udp_send(arg);
    if (!strcmp(attack, "abstract_listen")) return abstract_listen(arg);
    if (!strcmp(attack, "abstract_connect")) return abstract_connect(arg);
    if (!strcmp(attack, "tcp_bind")) return tcp_bind();
    if (!strcmp(attack, "proc_comm_write")) return proc_comm_write();
    if (!strcmp(attack, "nosuid_mounts")) return nosuid_mounts();
    if (!strcmp(attack, "counter")) return counter();
    if (!strcmp(attack, "ssl_private")) return expect_errno(open("/etc/ssl/private", O_RDONLY | O_DIRECTORY), ENOENT);
    if (!strcmp(attack, "ia32_available")) { long r = i386_getpid(); printf("IA32 %s\n", r == getpid() ? "yes" : "no"); return 0; }
    if (!strcmp(attack, "interfaces")) return only_lo();
    if (!strcmp(attack, "caps_eff")) return status_line("CapEff:", "0000000000000000");
    if (!strcmp(attack, "caps_prm")) return status_line("CapPrm:", "0000000000000000");
    if (!strcmp(attack, "caps_inh")) return status_line("CapInh:", "0000000000000000");
    if (!strcmp(attack, "caps_bnd")) return status_line("CapBnd:", "0000000000000000");
    if (!strcmp(attack, "caps_amb")) return status_line("CapAmb:", "0000000000000000");
    if (!strcmp(attack, "no_new_privs")) return status_line("NoNewPrivs:", "1");
    if (!strcmp(attack, "seccomp_on")) return status_line("Seccomp:", "2");
    if (!strcmp(attack, "fds")) return only_fds();
    if (!strcmp(attack, "setuid0")) return expect_fail(setuid(0));
    if (!strcmp(attack, "mknod")) return expect_fail(mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)));
    if (!strcmp(attack, "suid_binary")) return suid_exec();
    if (!strcmp(attack, "inject")) return inject(arg, argc > 3 ? argv[3] : "", argc > 4 ? argv[4] : "");
    if (!strcmp(attack, "nnp_suid")) return nnp_suid();
    if (!strcmp(attack, "kill_init")) return kill_init();
    if (!strcmp(attack, "kill_pid")) return expect_fail(kill(atoi(arg), SIGKILL));
    if (!strcmp(attack, "forkbomb")) return fork_bomb();
    if (!strcmp(attack, "membomb")) return mem_bomb();
    if (!strcmp(attack, "tmpfill")) return tmp_fill(arg);
    if (!strcmp(attack, "tmpinodes")) return tmp_inodes(arg);
    if (!strcmp(attack, "cpuburn")) return cpu_burn(arg);
    printf("UNKNOWN %s\n", attack);
    return 2;
}
