/* The helper's own jail, applied by the helper to itself at start (the shape of Chrome's
 * seccomp-bpf sandbox for its network service): the daemon never hands it a privilege to give
 * back. Order matters and each step needs what the next removes: namespaces need
 * CAP_SYS_ADMIN, dropping the bounding set needs CAP_SETPCAP, the id switch needs
 * CAP_SETUID/GID, Landlock and seccomp want no_new_privs, and seccomp is last because the
 * profile denies what the earlier steps call (unshare, capset, landlock_*). */
#define _GNU_SOURCE
#include "chelper.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Newer than the build machine's <linux/landlock.h> (6.1): values from the kernel's uapi, used
 * only when the running kernel reports the ABI that has them. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define LANDLOCK_RULE_NET_PORT 2
struct landlock_net_port_attr { uint64_t allowed_access; uint64_t port; };
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

#define STEP(n, call) do { if ((call) != 0) { *err = errno; return (n); } } while (0)

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Not root: a user namespace of our own, mapping only our ids, so that the bounding set can
 * be emptied and no capability is held anywhere. Absent user namespaces (a hardened kernel)
 * are not an error: seccomp, Landlock and no_new_privs still apply, and the helper holds no
 * capability in the host namespace anyway. */
static int enter_userns(int32_t *done) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    *done = 0;
    if (unshare(CLONE_NEWUSER) != 0) return (errno == EPERM || errno == EINVAL || errno == ENOSPC) ? 0 : -1;
    char map[64];
    snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
    if (write_file("/proc/self/uid_map", map) != 0) return -1;
    if (write_file("/proc/self/setgroups", "deny") != 0) return -1;
    snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
    if (write_file("/proc/self/gid_map", map) != 0) return -1;
    *done = 1;
    return 0;
}

static int drop_bounding(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break; /* past CAP_LAST_CAP */
            return -1;
        }
    }
    return 0;
}

static int clear_caps(void) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -1;
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    return (int)syscall(SYS_capset, &h, d);
}

static int switch_ids(uint32_t uid, uint32_t gid) {
    if (setgroups(0, NULL) != 0) return -1;
    if (setresgid(gid, gid, gid) != 0) return -1;
    return setresuid(uid, uid, uid);
}

struct ll_attr { uint64_t fs, net, scoped; };

int chelper_landlock_abi(void) {
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return v < 0 ? 0 : (int)v;
}

uint64_t chelper_landlock_fs_all(int abi) {
    uint64_t a = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
    if (abi >= 2) a |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) a |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5) a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return a;
}

uint64_t chelper_landlock_fs_read(int exec) {
    return LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | (exec ? LANDLOCK_ACCESS_FS_EXECUTE : 0);
}

uint64_t chelper_landlock_fs_fill(int abi) {
    uint64_t a = chelper_landlock_fs_read(0) | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |
                 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE;
    if (abi >= 3) a |= LANDLOCK_ACCESS_FS_TRUNCATE;
    return a;
}

static int landlock(const struct chelper_confinement *c) {
    int abi = c->landlock_abi;
    struct ll_attr attr = {chelper_landlock_fs_all(abi), 0, 0};
    size_t size = 8;
    if (abi >= 4) { attr.net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP; size = 16; }
    /* ABI 6: no abstract unix socket outside the domain, no signal outside it. */
    if (abi >= 6) { attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL; size = 24; }
    long rs = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0) return -1;
    int e = 0;
    for (uint32_t i = 0; i < c->rule_count && !e; i++) {
        struct landlock_path_beneath_attr pb = {c->rules[i].access & attr.fs, c->rules[i].fd};
        if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) e = errno;
    }
    for (uint32_t i = 0; abi >= 4 && i < c->port_count && !e; i++) {
        struct landlock_net_port_attr np = {LANDLOCK_ACCESS_NET_CONNECT_TCP, c->ports[i]};
        if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_NET_PORT, &np, 0) != 0) e = errno;
    }
    if (!e && syscall(SYS_landlock_restrict_self, rs, 0) != 0) e = errno;
    close((int)rs);
    errno = e;
    return e ? -1 : 0;
}

static int seccomp_install(const struct chelper_confinement *c) {
    for (uint32_t i = 0; i < c->filter_count; i++) {
        struct sock_fprog prog = {(unsigned short)(c->filter_lengths[i] / 8), (struct sock_filter *)c->filters[i]};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) return -1;
    }
    return 0;
}

int chelper_confine(const struct chelper_confinement *c, int32_t *err) {
    int root = geteuid() == 0;
    int32_t in_userns = 0;
    int flags = CLONE_NEWIPC | CLONE_NEWUTS | (c->isolate_network ? CLONE_NEWNET : 0);
    *err = 0;
    if (!root) STEP(CHELPER_STEP_USERNS, enter_userns(&in_userns));
    if (root || in_userns) {
        STEP(CHELPER_STEP_UNSHARE, unshare(flags));
        STEP(CHELPER_STEP_BOUNDING, drop_bounding());
    }
    if (root) STEP(CHELPER_STEP_IDS, switch_ids(c->uid, c->gid));
    STEP(CHELPER_STEP_CAPS, clear_caps());
    STEP(CHELPER_STEP_NNP, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    STEP(CHELPER_STEP_NNP, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    if (c->landlock_abi > 0) STEP(CHELPER_STEP_LANDLOCK, landlock(c));
    STEP(CHELPER_STEP_SECCOMP, seccomp_install(c));
    return 0;
}
