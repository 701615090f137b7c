#ifndef CLINUX_SHIMS_H
#define CLINUX_SHIMS_H
/* Thin libc shims for what Swift cannot reach directly (GNU-only prototypes, macros). */
#include <sys/types.h>


/* signalfd for `sigs` with SFD_CLOEXEC; <sys/signalfd.h> is not in Glibc's Swift module. */
#include <signal.h>
int clinux_signalfd(const sigset_t *sigs);
/* Reads one signalfd_siginfo; returns the signal number, or -1 (errno set). */
int clinux_signalfd_read(int fd);
#endif
