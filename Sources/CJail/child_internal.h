/* Internal to CJail: the per-mechanism steps run by the child (child_*.c). All of them are
 * async-signal-safe: raw syscalls and the AS-safe subset of libc only. Each returns 0 or an
 * errno value, and stores the failing item in *index when the step has several. */
#ifndef CJAIL_CHILD_INTERNAL_H
#define CJAIL_CHILD_INTERNAL_H
#include "include/cjail.h"

int child_mount_private(void);
int child_mount_root(const struct cjail_spec *s);
/* Mount ops [from, to). */
int child_mount_ops(const struct cjail_spec *s, uint32_t from, uint32_t to, int32_t *index);
int child_pivot_root(const struct cjail_spec *s);
int child_root_readonly(void);
int child_loopback_up(void);
int child_rlimits(const struct cjail_spec *s, int32_t *index);
int child_fds(const struct cjail_spec *s, int *err_fd, int *status_fd, int32_t *index);
int child_caps_bounding(void);
int child_securebits(void);
int child_setgroups(void);
int child_setgid(uint32_t gid);
int child_setuid(uint32_t uid);
int child_caps_clear(void);
int child_landlock(const struct cjail_spec *s, int32_t *index);
int child_seccomp(const struct cjail_spec *s, int32_t *index);
int child_signals_default(void);
/* Starts `program(arg)` vfork-style and becomes the reaper (PID 1): never returns on success;
 * returns an errno value when the program could not be started. */
int child_reaper_spawn(int (*program)(void *), void *arg, int err_fd, int status_fd);
int child_exec(const struct cjail_spec *s);

/* Warm jails (child_warm_jail.c): close every descriptor but these three; wait for a launch on
 * `chan` and unpack its spec (fds and trace slots taken from the message) into *out. */
int child_keep_fds(int err_fd, int status_fd, int chan);
int child_warm_jail_finish(const struct cjail_spec *template, int chan, struct cjail_spec **out);

/* Writes a {step, errno, index} record on the error pipe (best effort). */
void child_report(int err_fd, int step, int err, int index);
#endif
