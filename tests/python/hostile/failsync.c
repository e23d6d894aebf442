/* LD_PRELOAD shim for tests/python/hostile/test_fsync_error.py: once the
 * file named by FAILSYNC_TRIGGER exists, fsync() and fdatasync() on files
 * whose path contains FAILSYNC_MATCH fail with EIO, as a dying disk's would.
 * Everything else goes to the C library. Deterministic, needs no root, no
 * device-mapper and no FUSE. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd)
{
    const char *trigger = getenv("FAILSYNC_TRIGGER");
    const char *match = getenv("FAILSYNC_MATCH");
    char link[64], path[4096];
    ssize_t n;

    if (trigger == NULL || access(trigger, F_OK) != 0)
        return 0;
    if (match == NULL)
        return 1;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = '\0';
    return strstr(path, match) != NULL;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
