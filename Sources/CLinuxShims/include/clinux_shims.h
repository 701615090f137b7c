#ifndef CLINUX_SHIMS_H
#define CLINUX_SHIMS_H
/* Thin libc shims for things Swift cannot reach directly (macros, variadic calls). */
int clinux_shims_version(void);
#endif
