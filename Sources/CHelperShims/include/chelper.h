#ifndef CHELPER_H
#define CHELPER_H
/* How a helper for untrusted bytes (miniappd-helper) confines itself, in one ordered list of
 * steps, before it reads a single byte of partner data. Swift collects the inputs (descriptors
 * of the Landlock trees, the compiled seccomp programs) and formats the outcome; this file only
 * makes the system calls Swift cannot (variadic syscall(), prctl). */
#include <stdint.h>

enum chelper_step {
    CHELPER_STEP_NONE = 0,
    CHELPER_STEP_USERNS,     /* unshare(CLONE_NEWUSER) and the id maps (not root) */
    CHELPER_STEP_UNSHARE,    /* the other namespaces */
    CHELPER_STEP_BOUNDING,   /* PR_CAPBSET_DROP of every capability */
    CHELPER_STEP_IDS,        /* setgroups, setresgid, setresuid (root only) */
    CHELPER_STEP_CAPS,       /* ambient cleared, capset to nothing */
    CHELPER_STEP_NNP,        /* PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE 0 */
    CHELPER_STEP_LANDLOCK,   /* ruleset, rules, restrict_self */
    CHELPER_STEP_SECCOMP,    /* each program, TSYNC */
};

struct chelper_rule {
    int32_t fd;          /* O_PATH (or directory) descriptor of the tree */
    uint64_t access;     /* LANDLOCK_ACCESS_FS_* allowed beneath it */
};

struct chelper_confinement {
    uint32_t uid, gid;             /* to switch to when started as root */
    int32_t isolate_network;       /* also unshare the network namespace */
    int32_t landlock_abi;          /* probed by the caller; 0 = none */
    const struct chelper_rule *rules;
    uint32_t rule_count;
    const uint16_t *ports;         /* TCP connect allowed to these (ABI >= 4) */
    uint32_t port_count;
    const uint8_t *const *filters; /* struct sock_filter arrays */
    const uint32_t *filter_lengths;/* in bytes */
    uint32_t filter_count;
};

/* Runs every step; returns 0, or the failed step with *err set to its errno. */
int chelper_confine(const struct chelper_confinement *c, int32_t *err);
/* The Landlock ABI version of the running kernel (0 when absent or disabled). */
int chelper_landlock_abi(void);
/* Every filesystem access right of Landlock ABI `abi`. */
uint64_t chelper_landlock_fs_all(int abi);
/* Read rights: READ_FILE | READ_DIR (| EXECUTE when exec). */
uint64_t chelper_landlock_fs_read(int exec);
/* Rights to fill a staging tree: read, write, make dir/reg, remove, truncate (when known). */
uint64_t chelper_landlock_fs_fill(int abi);
#endif
