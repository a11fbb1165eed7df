/* Keeps the component free of WASI imports. wasi-libc's snprintf and strtod can report, on stderr,
 * that long double support is missing, a path this module never takes; that reference alone would
 * make the component import WASI streams, files and clocks, which the node need not provide. These
 * definitions take the place of wasi-libc's, so stderr writes fail with EBADF instead. If wasi-libc
 * ever needs more of WASI, the link fails on duplicate symbols rather than importing it silently. */
#include <wasi/api.h>

__wasi_errno_t __wasi_fd_write(__wasi_fd_t fd, const __wasi_ciovec_t *iovs, size_t iovs_len,
                               __wasi_size_t *written) {
    (void)fd, (void)iovs, (void)iovs_len, (void)written;
    return __WASI_ERRNO_BADF;
}

__wasi_errno_t __wasi_fd_seek(__wasi_fd_t fd, __wasi_filedelta_t offset, __wasi_whence_t whence,
                              __wasi_filesize_t *new_offset) {
    (void)fd, (void)offset, (void)whence, (void)new_offset;
    return __WASI_ERRNO_BADF;
}

__wasi_errno_t __wasi_fd_close(__wasi_fd_t fd) {
    (void)fd;
    return __WASI_ERRNO_BADF;
}
