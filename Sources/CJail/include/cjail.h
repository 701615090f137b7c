#ifndef CJAIL_H
#define CJAIL_H
/* The jail steps between clone and execve. Filled in by the jail work (issue 2). */
int cjail_version(void);
#endif
