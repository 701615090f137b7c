#ifndef CLINUX_SHIMS_H
#define CLINUX_SHIMS_H
/* Thin libc shims for what Swift cannot reach directly (GNU-only prototypes, macros). */
#include <sys/types.h>


/* signalfd for `sigs` with SFD_CLOEXEC; <sys/signalfd.h> is not in Glibc's Swift module. */
#include <signal.h>
int clinux_signalfd(const sigset_t *sigs);
/* Reads one signalfd_siginfo; returns the signal number, or -1 (errno set). */
int clinux_signalfd_read(int fd);
/* Sets the calling thread's (only: raw syscalls, not glibc's process-wide setxid broadcast)
 * filesystem uid, filesystem gid and supplementary groups, for opening a file exactly as another
 * user would. Returns 0, or -1 with errno when the kernel did not take them (the caller must then
 * restore and fail closed). */
int clinux_thread_fs_identity(unsigned int uid, unsigned int gid, const unsigned int *groups, int ngroups);
/* Empties the calling thread's capability bounding set (needs CAP_SETPCAP: before the uid
 * change). 0 or -errno. */
int clinux_drop_bounding_set(void);
/* Empties the bounding set of every thread of the process (a signal broadcast, as glibc does
 * for setresuid) and checks each in /proc; 0, or -errno (-EAGAIN: a thread never dropped; its tid in *stuck_tid). */
int clinux_drop_bounding_set_all_threads(int *stuck_tid);
/* Unblocks that broadcast's signal in the calling thread (a thread started from one of the
 * runtime's threads inherits a mask that blocks nearly every signal). */
void clinux_thread_accept_broadcast(void);
/* The process gives up root for good: ambient capabilities cleared, supplementary groups set to
 * `gid` alone, then real/effective/saved gid and uid (glibc applies both to every thread), every
 * capability set emptied (capset), and no_new_privs set. 0, or -errno of the step that failed
 * (*step names it). */
/* For a process that starts unprivileged (a daemon beside a spawner service): empties the
 * ambient, permitted, effective and inheritable sets and sets no_new_privs. 0 or -errno with
 * *step naming the failed step. (The bounding set needs CAP_SETPCAP: the service manager's.) */
int clinux_confine_unprivileged(const char **step);

int clinux_drop_to(unsigned int uid, unsigned int gid, const char **step);
/* Installs a classic BPF seccomp program of `len` bytes on every thread (SECCOMP_FILTER_FLAG_TSYNC,
 * which also gives each thread no_new_privs). 0 or -errno (-ESRCH: a thread could not be synced). */
int clinux_seccomp_install(const void *insns, unsigned long len);
#endif
