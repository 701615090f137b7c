#ifndef CJAIL_H
#define CJAIL_H
/*
 * CJail: the only code of miniappd that runs between clone(2) and execve(2).
 *
 * Everything the child needs is prepared by the (multi-threaded) Swift daemon and handed over in
 * one `cjail_spec`: paths, mount operations, ids, rlimits, the Landlock rules and the compiled
 * seccomp programs. The child performs ONE ordered list of steps (child_main.c) using only
 * async-signal-safe calls and raw syscalls; it never allocates, formats strings or takes locks
 * (the parent's other threads may have held malloc/stdio locks at clone time).
 *
 * Failures travel as fixed-size binary `cjail_error` records over a CLOEXEC pipe; the Swift side
 * maps the step number to a name and formats the message (runc's advice: no strings in C).
 *
 * Protocol (daemon thread P, spawner process S, child C = PID 1 of the new pid namespace,
 * G = the program; the request and reply types are below, spawner_server.c has the details):
 *
 *     starter (the daemon at its start, or `miniapp jail`): start S, register templates
 *        (the launch-independent part of every spec S may clone, the id range, the roots of
 *        /app and /data), optionally lock the set (see "Templates" below)
 *     P: build the spec blob (sealed memfd), pipes for output; send one cjail_spawn_request
 *        + SCM_RIGHTS [blob, stdin, stdout, stderr, bridge, netns, trace, cgroup.procs...] to S
 *        (SOCK_SEQPACKET), with its own reply socket
 *     S: copy and unpack the blob, check it against its template (refused: reply, no clone),
 *        open /app and /data from the held roots as detached mount trees,
 *        go/err/status pipes (O_CLOEXEC), block signals,
 *        clone(CLONE_NEW*|CLONE_PIDFD|CLONE_PARENT): C is P's child, not S's
 *        (or hand the launch to a warm jail of the same policy that did phase A ahead of time:
 *        spawner_warm.c, child_warm_jail.c; one waiting in a pooled cgroup carrying the
 *        launch's limits, CJAIL_SPAWN_WARM_CGROUP, is not moved: no cgroup.procs below)
 *     C:                                           wait for "go" byte on go pipe
 *     S: [rootless] write setgroups/gid_map/uid_map; write C's pid into every cgroup.procs;
 *        write "go"; send cjail_spawn_reply + SCM_RIGHTS [pidfd, err, status?] on the reply
 *        socket; close its copies
 *     C: phase A (launch-independent): namespaces, the policy's mounts, the bounding set;
 *        phase B: the launch's mounts (/app, /data: move_mount of S's trees), pivot_root, ids,
 *        caps, no_new_privs, Landlock, seccomp
 *     C: [reaper] start G vfork-style (CLONE_VM|CLONE_VFORK: no copy of the address space);
 *        once G exec'd, C closes its pipe ends and waits for children
 *     G: reset signals, execve  --> error pipe closed by O_CLOEXEC: P reads EOF = success
 *     any failure: write {step, errno, index} and _exit(127): P reads the record
 *
 * S is a small single-threaded C process (Sources/miniappd-spawner): what C inherits is S's
 * memory image, not the daemon's (spawner_server.c says why that matters).
 */
#include <stdint.h>
#include <stddef.h>

/* The ordered steps. Numbers are stable: the Swift side names them (JailStep in JailSpawnPlan.swift). */
enum cjail_step {
    CJAIL_STEP_NONE = 0,
    CJAIL_STEP_WAIT_GO = 1,
    CJAIL_STEP_DUMPABLE = 2,
    CJAIL_STEP_SETSID = 3,
    CJAIL_STEP_CGROUP_NS = 4,
    CJAIL_STEP_MOUNT_PRIVATE = 5,
    CJAIL_STEP_MOUNT_ROOT = 6,
    CJAIL_STEP_MOUNT_OP = 7,
    CJAIL_STEP_PIVOT_ROOT = 8,
    CJAIL_STEP_ROOT_READONLY = 9,
    CJAIL_STEP_HOSTNAME = 10,
    CJAIL_STEP_LOOPBACK = 11,
    CJAIL_STEP_RLIMITS = 12,
    CJAIL_STEP_FDS = 13,
    CJAIL_STEP_CHDIR = 14,
    CJAIL_STEP_CAPS_BOUNDING = 15,
    CJAIL_STEP_SECUREBITS = 16,
    CJAIL_STEP_SETGROUPS = 17,
    CJAIL_STEP_SETGID = 18,
    CJAIL_STEP_SETUID = 19,
    CJAIL_STEP_CAPS_CLEAR = 20,
    CJAIL_STEP_PDEATHSIG = 21,
    CJAIL_STEP_NO_NEW_PRIVS = 22,
    CJAIL_STEP_LANDLOCK = 23,
    CJAIL_STEP_SECCOMP = 24,
    CJAIL_STEP_REAPER_FORK = 25,
    CJAIL_STEP_SIGNALS = 26,
    CJAIL_STEP_EXEC = 27,
    CJAIL_STEP_NETNS = 28,
    CJAIL_STEP_WARM_JAIL_FINISH = 29, /* a warm jail receiving its launch */
    CJAIL_STEP_UNSHARE = 30,       /* a warm jail making its namespaces other than pid/user */
    CJAIL_STEP_COUNT = 31
};

/* A failure record. `index` says which mount op / rlimit / rule / filter failed (-1: n/a). */
struct cjail_error {
    int32_t magic; /* CJAIL_ERROR_MAGIC: guards against reading garbage */
    int32_t step;
    int32_t err;
    int32_t index;
};
#define CJAIL_ERROR_MAGIC 0x4a41494c /* "JAIL" */

enum cjail_mount_kind {
    CJAIL_MNT_DIR = 1,     /* mkdir target (mode) */
    CJAIL_MNT_BIND = 2,    /* bind source (recursive) onto target, then mount_setattr(attr_set) */
    CJAIL_MNT_TMPFS = 3,   /* tmpfs with options `data`, mount flags from attr_set */
    CJAIL_MNT_PROC = 4,    /* fresh procfs (the child is already in its pid namespace) */
    CJAIL_MNT_SYMLINK = 5, /* symlink(data, target) */
    CJAIL_MNT_FILE = 6,    /* create target with `data` (data_len bytes), mode */
    CJAIL_MNT_SETATTR = 7, /* mount_setattr(target, AT_RECURSIVE, attr_set) on an existing mount */
    CJAIL_MNT_MASK = 8,    /* cover an EXISTING target (never created): bind `source` over a file
                            * (source_is_dir 0), or an empty read-only tmpfs over a directory (1);
                            * then mount_setattr(attr_set) on the file's bind */
};

/* One filesystem operation; `target` is an absolute host path under the new root. */
struct cjail_mount_op {
    int32_t kind;
    int32_t source_is_dir; /* BIND: create a directory (1) or an empty file (0) as mountpoint */
    uint32_t mode;
    int32_t source_fd;     /* BIND: -1, or a detached mount tree (open_tree) to attach instead of
                              binding `source` by path: set by the spawner after it resolved the
                              source itself (spawner_template.c), never taken from a blob */
    uint64_t attr_set;     /* MOUNT_ATTR_* for BIND; MS_* flags for TMPFS/PROC */
    const char *source;
    const char *target;
    const char *data;
    size_t data_len;
};

struct cjail_rlimit {
    int32_t resource;
    int32_t _pad;
    uint64_t soft;
    uint64_t hard;
};

struct cjail_landlock_rule {
    const char *path;      /* path inside the jail (after pivot_root) */
    uint64_t access;       /* LANDLOCK_ACCESS_FS_* allowed beneath path */
};

struct cjail_filter {
    const void *insns;     /* struct sock_filter[] */
    uint32_t count;        /* number of instructions */
    uint32_t _pad;
};

struct cjail_spec {
    /* namespaces */
    uint64_t clone_flags;      /* CLONE_NEW* (CLONE_NEWCGROUP is unshared after the cgroup attach) */
    int32_t netns_fd;          /* -1, or a fresh pooled network namespace (lo up) to setns into;
                                  clone_flags then lacks CLONE_NEWNET */
    int32_t late_unshare;      /* CLONE_NEW* flags the child unshares at the start of phase A
                                  instead of at clone: set by the spawner for warm jails only
                                  (never from a blob), so that its clone stays short */
    int32_t user_ns;           /* rootless mode: the parent writes the id maps */
    int32_t unshare_cgroup;    /* unshare(CLONE_NEWCGROUP) after "go" */
    /* filesystem */
    const char *root_path;     /* empty host directory the new root tmpfs is mounted on */
    const char *root_options;  /* tmpfs options of the root */
    const struct cjail_mount_op *mounts;
    uint32_t mount_count;
    uint32_t static_mount_count; /* ops [0, this) do not depend on the launch (a warm jail's) */
    int32_t root_readonly;
    const char *hostname;
    const char *workdir;       /* inside the jail */
    /* identity */
    uint32_t uid, gid;         /* inside the jail's view */
    int32_t skip_setgroups;    /* rootless: setgroups is denied by the parent */
    int32_t pdeathsig;
    /* resources */
    const struct cjail_rlimit *rlimits;
    uint32_t rlimit_count;
    /* fds of the parent that become 0, 1, 2, 3 (-1: fd 3 stays closed) */
    int32_t stdin_fd, stdout_fd, stderr_fd, bridge_fd;
    /* Landlock (abi 0: skip) */
    int32_t landlock_abi;
    uint64_t landlock_handled_fs;
    uint64_t landlock_handled_net;
    uint64_t landlock_scoped;
    const struct cjail_landlock_rule *landlock_rules;
    uint32_t landlock_rule_count;
    /* seccomp: installed in order, last step before the reaper fork and execve */
    const struct cjail_filter *filters;
    uint32_t filter_count;
    /* PID 1 reaper: fork the program, forward TERM/INT/HUP, reap everything */
    int32_t reaper;
    /* program: candidates tried in order until one is not ENOENT */
    const char *const *exec_paths;
    uint32_t exec_path_count;
    char *const *argv;
    char *const *envp;
    /* Profiling (MINIAPP_JAIL_TRACE): NULL, or CJAIL_STEP_COUNT slots of MAP_SHARED memory where
     * the child stores the CLOCK_MONOTONIC time (ns) at which each step finished. Writing a
     * number into shared memory is async-signal-safe; the parent formats it. */
    uint64_t *trace;
};

/* A started child: owned by the caller until released/killed. */
struct cjail_child {
    int32_t pid;
    int32_t pidfd;
    int32_t go_fd;     /* write end of the go pipe */
    int32_t err_fd;    /* read end of the error pipe */
    int32_t status_fd; /* read end of the reaper's status pipe (-1 without reaper) */
};

/* Spawner: clone the child with the namespaces of `spec`; it waits for cjail_go. Returns 0 or
 * -errno. The caller's signal dispositions must all be SIG_DFL (the spawner resets them at
 * start): the child inherits them and does not reset them again. */
int cjail_clone(const struct cjail_spec *spec, struct cjail_child *out);

/* Spawner: clone a warm jail from `template` (phase A only; it then waits on its channel for a
 * launch, see child_warm_jail.c). *chan is the spawner's end of that channel. 0 or -errno. */
int cjail_clone_warm_jail(const struct cjail_spec *template, struct cjail_child *out, int *chan);

/* Spawner: send "go" (the child starts its steps) and close go_fd. 0 or -errno. */
int cjail_go(struct cjail_child *child);

/* Daemon: block until the child exec'd (returns 0: error pipe EOF) or failed (returns 1 and
 * fills *err). Closes err_fd. */
int cjail_wait_exec(int err_fd, struct cjail_error *err);

/* ---- The spawner process (spawner_server.c) and its client (spawner_client.c) ----
 * Workers are cloned by a small single-threaded helper process, never by the daemon itself
 * (see spawner_server.c for why). The daemon sends the spec as a position-independent blob in a
 * memfd (every pointer field an offset from the blob's start, 0 = NULL) plus the fds it names;
 * the spawner clones with CLONE_PARENT and returns the child's fds. */
#define CJAIL_SPAWN_MAGIC 0x4e574153 /* "SAWN" */

/* The fds of a request, by role; a request carries the present ones in this order. */
enum cjail_spawn_fd {
    CJAIL_SPAWN_FD_BLOB = 0,   /* memfd holding the spec blob (required) */
    CJAIL_SPAWN_FD_STDIN = 1,
    CJAIL_SPAWN_FD_STDOUT = 2,
    CJAIL_SPAWN_FD_STDERR = 3,
    CJAIL_SPAWN_FD_BRIDGE = 4,
    CJAIL_SPAWN_FD_NETNS = 5,
    CJAIL_SPAWN_FD_TRACE = 6,  /* memfd of CJAIL_TRACE_SLOTS uint64 slots (MINIAPP_JAIL_TRACE), its
                                  size sealed (else ignored: a file shrunk under the spawner's
                                  mapping would kill it with SIGBUS at its next mark) */
    CJAIL_SPAWN_FD_PROCS = 7,  /* 7..11: cgroup.procs of each hierarchy, opened for writing */
    CJAIL_SPAWN_FD_REPLY = 12, /* the request's own reply socket (required): the reply goes there */
    CJAIL_SPAWN_FD_COUNT = 13
};
#define CJAIL_SPAWN_MAX_PROCS 5

/* Trace slots: the child's steps, then the spawner's own marks. */
enum cjail_trace_slot {
    CJAIL_TRACE_SPAWNER_RECEIVED = CJAIL_STEP_COUNT,
    CJAIL_TRACE_SPAWNER_CLONED,
    CJAIL_TRACE_SPAWNER_ATTACHED,
    CJAIL_TRACE_SPAWNER_GO,
    CJAIL_TRACE_SLOTS
};

/* Request flags. */
#define CJAIL_SPAWN_IDMAP 1u /* write setgroups=deny, gid_map and uid_map (rootless mode) */
#define CJAIL_SPAWN_WARM 2u  /* keep a warm jail made from this request's launch-independent part,
                                and use one that matches it (spawner_server.c) */
#define CJAIL_SPAWN_WARM_CGROUP 4u /* with WARM and a cgroup name: warm jails live in pooled cgroups
                                      (spawner_warm.c). A jail taken from its own cgroup is not
                                      moved (the reply names that cgroup); the request's cgroup
                                      is then lent to the next warm jail made (a notice says what
                                      became of it). Needs cgroup_limits; spare_cgroup optional. */

/* What the spawner sends a warm jail on its channel to give it a launch (child_warm_jail.c). */
enum cjail_warm_jail_fd {
    CJAIL_WARM_JAIL_FD_BLOB = 0,
    CJAIL_WARM_JAIL_FD_STDIN = 1,
    CJAIL_WARM_JAIL_FD_STDOUT = 2,
    CJAIL_WARM_JAIL_FD_STDERR = 3,
    CJAIL_WARM_JAIL_FD_BRIDGE = 4,
    CJAIL_WARM_JAIL_FD_TRACE = 5,
    CJAIL_WARM_JAIL_FD_TREE = 6,  /* 6..9: the mount trees of the ops named in tree_op */
    CJAIL_WARM_JAIL_FD_COUNT = 10
};
#define CJAIL_MAX_TREES 4
struct cjail_warm_jail_launch {
    uint32_t magic;    /* CJAIL_SPAWN_MAGIC */
    uint32_t fd_mask;  /* bit r: the fd of role r is attached */
    uint64_t blob_len; /* the blob is the spawner's own sealed copy, never the daemon's memfd */
    int32_t tree_op[CJAIL_MAX_TREES]; /* mount op index of tree fd k, or -1 */
};

/* A notice the spawner sends on its main socket, unasked, for every warm jail it makes: the
 * jail is the daemon's child (CLONE_PARENT), so the daemon watches its pidfd (attached) and
 * reaps it if it dies or is discarded before a launch takes it; a launch that takes it hands it
 * over to the worker's own watch (the reply names the pid). The daemon thus reaps every warm
 * jail even when the spawner itself dies. */
#define CJAIL_NAME_MAX 128
struct cjail_spawner_notice {
    uint32_t magic;    /* CJAIL_SPAWN_MAGIC */
    int32_t pid;       /* 0: no jail; `cgroup`, lent by a CJAIL_SPAWN_WARM_CGROUP request, was
                          not used (nothing was put in it): it is the daemon's again */
    char cgroup[CJAIL_NAME_MAX]; /* the pooled cgroup the jail was put in before its phase A, or empty */
};

struct cjail_spawn_request {
    uint32_t magic;
    uint32_t fd_mask;   /* bit r set: the fd of role r is attached */
    uint64_t blob_len;  /* bytes of the blob in the memfd */
    uint32_t flags;
    uint32_t inside_uid, outside_uid, inside_gid, outside_gid; /* CJAIL_SPAWN_IDMAP */
    uint32_t template_id; /* the registered template the launch must match */
    /* Empty, or the worker's cgroup by name ([A-Za-z0-9._-], not starting with '.'): the
     * spawner opens NAME/cgroup.procs under each cgroup directory of the template itself and
     * attaches the worker there; no CJAIL_SPAWN_FD_PROCS descriptor may come with it. An
     * unprivileged daemon cannot pass its own: since Linux 5.16 a cgroup.procs write is
     * checked against the credentials of whoever opened the file (CVE-2021-4197). */
    char cgroup[CJAIL_NAME_MAX];
    /* CJAIL_SPAWN_WARM_CGROUP: the limits the daemon wrote into `cgroup` (memory bytes, pids,
     * cpu percent). Part of the warm jails' key: a jail waits in a cgroup carrying the limits
     * of the launch that lent it, and only a launch asking for the same ones takes it. */
    uint64_t cgroup_limits[3];
    /* CJAIL_SPAWN_WARM_CGROUP, optional: another cgroup of the daemon's carrying the same
     * limits, lent for a warm jail made after this launch (the request's own `cgroup` is lent
     * too when the launch does not need it). Each lent cgroup comes back in a notice: holding a
     * jail (its pid), or unused (pid 0). */
    char spare_cgroup[CJAIL_NAME_MAX];
};

/* Where a spawn failed on the spawner's side (reply.failed_step). */
enum cjail_spawn_step {
    CJAIL_SPAWN_OK = 0,
    CJAIL_SPAWN_REQUEST = 1, /* malformed request or blob */
    CJAIL_SPAWN_CLONE = 2,
    CJAIL_SPAWN_IDMAP_STEP = 3,
    CJAIL_SPAWN_CGROUP = 4,
    CJAIL_SPAWN_GO = 5,
    CJAIL_SPAWN_REFUSED = 6  /* the launch does not match its template (reply.refused says where) */
};

struct cjail_spawn_reply {
    uint32_t magic;
    int32_t result;      /* 0, or -errno of the spawner-side step that failed */
    int32_t failed_step; /* enum cjail_spawn_step */
    int32_t pid;         /* host pid of the worker's PID 1 (0: none was cloned) */
    int32_t fd_count;    /* attached when a child exists: pidfd, err (read end), [status (read end)] */
    int32_t warm;        /* 1: a warm jail took the launch (it did phase A ahead of time) */
    int32_t refused;     /* CJAIL_SPAWN_REFUSED: enum cjail_refusal */
    int32_t refused_index; /* the mount op / rlimit / rule / filter refused, or -1 */
    uint32_t fd_roles;   /* which descriptors are attached, in this order: CJAIL_REPLY_FD_* bits */
    char cgroup[CJAIL_NAME_MAX]; /* non-empty: the worker runs in this pooled cgroup, its warm
                                    jail's (CJAIL_SPAWN_WARM_CGROUP), not the request's */
};
#define CJAIL_REPLY_FD_PIDFD 1u
#define CJAIL_REPLY_FD_ERR 2u
#define CJAIL_REPLY_FD_STATUS 4u
/* A spawner that is its own service (cjail_spawner_listen) is the worker's parent, not the
 * daemon: it reaps the worker and sends one struct cjail_exit_record (waitid's si_code and
 * si_status) on this stream socket, then closes it. EOF without a record: the spawner died. */
#define CJAIL_REPLY_FD_EXIT 8u
struct cjail_exit_record {
    int32_t code;
    int32_t status;
};

/* ---- Templates: what a spawn may ask for (spawner_template.c) ----
 * Whoever starts the spawner registers the launch-independent part of every spec it will ask
 * for (a "template": a spec blob whose launch-dependent mount ops name the roots instead of one
 * program's directories), then may lock the set (CJAIL_CTL_LOCK): from then on a request that
 * does not match a registered template is refused, so a compromised daemon cannot have a
 * worker bind a host path read-write, run as root, skip its seccomp filter, etc.
 *
 *     starter → spawner: cjail_template_request + SCM_RIGHTS [blob memfd, reply, cgroup dirs…]
 *     spawner → starter: cjail_control_reply on the reply socket
 *
 * A spawn matches template T when: its clone flags, user namespace, root, static mount ops,
 * read-only root, hostname, PDEATHSIG, reaper, Landlock ABI and handled sets and seccomp filters
 * equal T's (byte for byte); each Landlock rule is one of T's; each rlimit of T is present and
 * no higher; uid and gid are in T's range (an IDMAP maps them to T's outside ids only); each
 * launch-dependent op is one of: FILE at a target where T has a FILE; DIR at a target where T
 * has a DIR or BIND; BIND at <root>/app or <root>/data with T's attributes whose source
 * resolves (no symlinks, no "..") beneath T's source there (the spawner opens it from the
 * descriptor of that root it holds, and the jail binds that descriptor, not the path); any
 * other BIND equal to one of T's. argv, envp, exec paths and workdir are free: they only act
 * inside the jail. */
#define CJAIL_TEMPLATE_MAGIC 0x504d4554 /* "TEMP" */
#define CJAIL_CONTROL_MAGIC 0x4c525443  /* "CTRL" */
#define CJAIL_TEMPLATES_MAX 64
#define CJAIL_TEMPLATE_IDMAP 1u    /* rootless: launches must write this id map */
#define CJAIL_TEMPLATE_NETNS_FD 2u /* launches may pass a pooled network namespace */

enum cjail_template_fd {
    CJAIL_TEMPLATE_FD_BLOB = 0,
    CJAIL_TEMPLATE_FD_REPLY = 1,
    CJAIL_TEMPLATE_FD_CGROUP = 2, /* 2..6: O_PATH directories the worker cgroups are made in */
    CJAIL_TEMPLATE_FD_COUNT = 7
};

struct cjail_template_request {
    uint32_t magic;     /* CJAIL_TEMPLATE_MAGIC */
    uint32_t fd_mask;
    uint64_t blob_len;
    uint32_t id;        /* chosen by the starter, unique; spawn and control requests name it */
    uint32_t flags;     /* CJAIL_TEMPLATE_* */
    uint32_t uid_min, uid_count; /* the ids a launch may run as (uid and gid alike); never 0 on
                                    the host: a range holding 0 is refused */
    uint32_t outside_uid, outside_gid; /* CJAIL_TEMPLATE_IDMAP: the only outside ids */
};

/* Why a spawn was refused (reply.refused). Stable: the Swift side names them. */
enum cjail_refusal {
    CJAIL_REFUSE_NONE = 0,
    CJAIL_REFUSE_TEMPLATE = 1,   /* unknown template id */
    CJAIL_REFUSE_NAMESPACES = 2, /* clone flags, user namespace, cgroup namespace, netns fd */
    CJAIL_REFUSE_ROOT = 3,       /* root path/options/read-only, hostname */
    CJAIL_REFUSE_STATIC = 4,     /* the launch-independent mount ops */
    CJAIL_REFUSE_MOUNT = 5,      /* a launch-dependent mount op (index) */
    CJAIL_REFUSE_IDENTITY = 6,   /* uid, gid or id map */
    CJAIL_REFUSE_RLIMIT = 7,
    CJAIL_REFUSE_LANDLOCK = 8,
    CJAIL_REFUSE_SECCOMP = 9,
    CJAIL_REFUSE_LIFETIME = 10,  /* pdeathsig, reaper */
    CJAIL_REFUSE_SOURCE = 11,    /* a bind source did not resolve beneath its root (index) */
    CJAIL_REFUSE_CGROUP = 12     /* the cgroup name is not a plain name, names no cgroup of the
                                    template's directories, or came with descriptors */
};

/* Fixed control requests (each with exactly one descriptor: its reply socket). */
enum cjail_control_kind {
    CJAIL_CTL_LOCK = 1,        /* no template may be registered any more */
    CJAIL_CTL_SIGNAL = 2,      /* {pid, sig}: pid a live worker (or warm jail) this spawner cloned,
                                  sig SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGSTOP or SIGCONT */
    CJAIL_CTL_KILL_CGROUP = 3, /* {template_id, name}: SIGKILL every process of cgroup `name`
                                  under each of the template's cgroup directories */
    CJAIL_CTL_CHOWN_DATA = 4,  /* {template_id, name, uid}: the directory `name` right under the
                                  template's data root: owner uid:uid, mode 0700 */
    CJAIL_CTL_MOUNT_VOLUME = 5,   /* {template_id, name} + the image's descriptor: a regular file
                                     (0600, one link, opened read-write) owned by the data root's
                                     owner, loop-mounted on the directory `name` right under the
                                     template's data root (cjail_volume_mount) */
    CJAIL_CTL_UNMOUNT_VOLUME = 6  /* {template_id, name}: detaches what is mounted on that
                                     directory (only a mount: never the data root itself) */
};
struct cjail_control_request {
    uint32_t magic;     /* CJAIL_CONTROL_MAGIC */
    uint32_t kind;      /* enum cjail_control_kind */
    uint32_t template_id;
    int32_t pid;
    int32_t sig;
    uint32_t uid;
    char name[CJAIL_NAME_MAX]; /* NUL-terminated; [A-Za-z0-9._-], not starting with '.' */
};
struct cjail_control_reply {
    uint32_t magic;     /* CJAIL_CONTROL_MAGIC */
    int32_t result;     /* 0 or -errno (EPERM: refused by a rule) */
};

/* What checking a spawn against a template found (cjail_template_check). */
struct cjail_check {
    int32_t refused;    /* enum cjail_refusal */
    int32_t index;      /* the item refused, or -1 */
    int32_t tree_op[CJAIL_MAX_TREES]; /* launch ops bound from a root: op index, or -1 */
    const char *tree_rel[CJAIL_MAX_TREES]; /* their sources relative to the root */
    int32_t tree_root[CJAIL_MAX_TREES];    /* 0: the /app root, 1: the /data root */
};

/* Checks `spec` (a launch, unpacked) against `tmpl` (a template, unpacked) and the template's
 * request `t`; `netns_fd`: whether the launch passes a network namespace. Pure: no system
 * call (the fuzz target runs it). 0, or -EPERM with out->refused/index set. */
int cjail_template_check(const struct cjail_spec *tmpl, const struct cjail_template_request *t,
                         const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns_fd,
                         struct cjail_check *out);

/* A control request's name: [A-Za-z0-9._-]{1,127}, NUL-terminated inside the field, not
 * starting with '.' (so neither "." nor ".." nor a hidden entry). 1 when valid. */
int cjail_name_valid(const char name[CJAIL_NAME_MAX]);

/* Starter: registers a template (id, ranges and flags in *t; the blob in a memfd), waits for
 * the reply. 0, or -errno (the spawner's refusal, or a transport error). */
int cjail_spawner_register(int sock, const struct cjail_template_request *t, int blob_fd, const int32_t *cgroup_fds, int cgroup_count);

/* Any message with descriptors on a spawner socket (tests send malformed ones with it). 0 or a
 * positive errno. */
int cjail_send_message(int sock, const void *data, size_t len, const int32_t *fds, int n);

/* Daemon: sends a control request and waits for its reply: 0 or -errno. */
int cjail_spawner_control(int sock, const struct cjail_control_request *req);
/* The same with one descriptor beside the reply socket (MOUNT_VOLUME: the image). */
int cjail_spawner_control_fd(int sock, const struct cjail_control_request *req, int fd);

/* Spawner: checks a blob and fills *out: strings and data point into the blob (which is only
 * read and must outlive *out), arrays are private copies. 0, or -EINVAL (nothing to release). */
int cjail_spec_unpack(const void *blob, size_t len, struct cjail_spec *out);

/* Spawner: frees the arrays of a spec filled by cjail_spec_unpack. */
void cjail_spec_release(struct cjail_spec *spec);

/* Spawner: serves requests on `sock` until the daemon closes it (returns 0) or the socket
 * fails (-errno). */
int cjail_spawner_serve(int sock);

/* Spawner as a service of its own (spawner_listen.c): listens on the SOCK_SEQPACKET socket
 * `path` (made 0600, owned by uid:gid), admits one connection at a time and only from `uid`
 * (SO_PEERCRED), serves it as cjail_spawner_serve serves its socket, and then waits for the
 * next. Workers are its own children (no CLONE_PARENT): it reaps them and reports each exit on
 * the worker's exit pipe (CJAIL_REPLY_FD_EXIT). Returns only on a listening failure: -errno. */
int cjail_spawner_listen(const char *path, uint32_t uid, uint32_t gid);

/* Set by cjail_spawner_listen: the spawner's children are its own to reap (no CLONE_PARENT). */
extern int cjail_spawner_own_children;

/* Daemon: connects to a spawner service's socket (cjail_spawner_listen). The socket or -errno. */
int cjail_spawner_connect(const char *path);

/* Daemon: starts the spawner executable (see spawner_client.c). 0 or -errno. */
int cjail_spawner_start(const char *path, int32_t *pid_out, int32_t *sock_out);

/* Daemon: starts `path` with its end of a new `socket_type` socketpair as fd 3 and `fds` as 4,
 * 5, …; every other descriptor of the daemon closed (closefrom), signals unblocked and at their
 * defaults, `envp` as the whole environment (spawn_connected.c). Returns 0 with *pid_out and
 * *sock_out (CLOEXEC), or -errno. */
int cjail_spawn_connected(const char *path, char *const argv[], char *const envp[], int socket_type, const int32_t *fds,
                          uint32_t nfds, int32_t *pid_out, int32_t *sock_out);

/* Daemon: reads one notice from the spawner's main socket without blocking: 0 (and *pidfd),
 * -EAGAIN when there is none, -EPIPE at EOF, -EPROTO for a malformed one, other -errno. */
int cjail_spawner_read_notice(int sock, struct cjail_spawner_notice *notice, int32_t *pidfd);

/* Daemon: a SOCK_SEQPACKET|SOCK_CLOEXEC socketpair (a request's reply socket). 0 or -errno. */
int cjail_seqpacket_pair(int32_t out[2]);

/* Daemon: sends one spawn request to the spawner on `sock`. `fds` by role (-1: absent; the
 * REPLY role is required: the reply arrives there, so requests from several threads never need
 * matching). 0, or a positive errno when the spawner could not be reached (start a new one). */
int cjail_spawner_send(int sock, const struct cjail_spawn_request *req, const int32_t fds[CJAIL_SPAWN_FD_COUNT]);

/* Daemon: reads the reply from the request's reply socket once it is readable. The spawner
 * replies once the child runs its steps: it cloned, wrote the id maps when asked, attached the
 * child to the cgroups whose cgroup.procs fds were passed and sent "go". Returns 0 and fills
 * *rep and *out (pidfd, err_fd for cjail_wait_exec, status_fd) when the spawner could act, and
 * *exit_fd (-1, or the worker's exit pipe from a spawner service: CJAIL_REPLY_FD_EXIT);
 * rep->result < 0 (with rep->failed_step) says what failed, and a child that exists must then
 * be killed and reaped by the caller. Returns a positive errno when no well-formed reply came
 * (EPIPE: the spawner died). */
int cjail_spawner_read_reply(int reply_fd, struct cjail_spawn_reply *rep, struct cjail_child *out, int32_t *exit_fd);

/* Parent: make a fresh network namespace ahead of time (privileged mode): unshare(CLONE_NEWNET)
 * on the calling thread, bring its loopback up, open it, then setns the thread back to
 * `home_fd`. Returns an O_CLOEXEC descriptor (>= 10) or -errno; -EDEADLK when the thread could
 * not return home (it must then never be used for anything else). */
int cjail_netns_create(int home_fd);

/* Privileged (CAP_SYS_ADMIN in the initial namespaces; volume_mount.c): mounts the ext4 image
 * `image_fd` (a regular file) on the directory `target_fd` through a loop device (reused when
 * one is already backed by that file, else a free one with autoclear), nosuid, nodev,
 * noatime, errors=remount-ro. 0 and *loop_index, or a positive errno (EINVAL: not a regular
 * file; ENOTDIR: not a directory). */
int cjail_volume_mount(int image_fd, int target_fd, int *loop_index);

/* Parent: probe the Landlock ABI version (0: unsupported). */
int cjail_landlock_abi(void);

/* Parent helpers for Swift (macros / variadic calls it cannot reach). */
int cjail_pidfd_send_signal(int pidfd, int sig);
int cjail_memfd(const char *name); /* MFD_CLOEXEC | MFD_ALLOW_SEALING */
/* A memfd of CJAIL_TRACE_SLOTS zeroed slots, its size sealed (F_SEAL_SHRINK | F_SEAL_GROW): the
 * spawner maps it shared and uses it only so sealed. The descriptor or -errno. */
int cjail_trace_memfd(const char *name);
/* A memfd holding `len` bytes of `data`, sealed against shrinking, growing and writing
 * (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE|F_SEAL_SEAL): what the spawner maps can neither be
 * truncated under it (SIGBUS) nor changed after it was checked. The descriptor or -errno. */
int cjail_sealed_memfd(const char *name, const void *data, size_t len);
/* Whether `fd` carries those seals (the spawner refuses a spec or template memfd that does not). */
int cjail_memfd_is_sealed(int fd);
int cjail_set_thread_name(const char *name);
/* The calling thread runs at nice 19 from now on (background work). 0 or -errno. */
int cjail_thread_background(void);
int cjail_poller_create(void);
int cjail_poller_add(int ep, int fd);
int cjail_poller_del(int ep, int fd);
int cjail_poller_wait(int ep, int32_t *fds, int max, int timeout_ms);
int cjail_eventfd(void);
int cjail_pipe_cloexec(int32_t fds[2]);
int cjail_waitid_pidfd(int pidfd, int options, int32_t *code, int32_t *status);

#endif
