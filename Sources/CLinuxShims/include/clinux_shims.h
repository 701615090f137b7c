#ifndef CLINUX_SHIMS_H
#define CLINUX_SHIMS_H
/* Thin libc shims for what Swift cannot reach directly (GNU-only prototypes, macros). */
#include <sys/types.h>

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC): accept4 is only declared under _GNU_SOURCE. */
int clinux_accept_cloexec(int fd);

/* Sets the calling thread's name (pthread_setname_np is GNU-only); names show in top/ps. */
void clinux_set_thread_name(const char *name);
#endif
