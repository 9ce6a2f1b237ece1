// recwrite: an LD_PRELOAD shim that records every write and flush a process makes to the LMDB data
// files under $HG_REC_DIR (files named data.mdb), so crash/powercut/powercut.py can build the disk images
// a power cut could leave (contract §10, P9).
//
// Log format ($HG_REC_LOG), little-endian records:
//   'W' u64 index, u64 file offset, u64 length, then the bytes        a write that returned
//   'S' u64 index of the first write NOT covered by this flush        an fsync/fdatasync that returned
//   'D' u64 index of one write that was durable when it returned      (see O_DSYNC below)
// A flush covers every write that had returned before the flush was called, which is why 'S' carries
// the write count taken at the call, not at the return.
//
// A write on an fd opened with O_DSYNC or O_SYNC (LMDB writes its meta page through such an fd, me_mfd,
// unless MDB_NOMETASYNC) is durable when it returns — that write, not the others (Linux syncs only its
// range). So it is recorded as its 'W' and then: an 'S' covering it when every earlier write was already
// covered by a completed flush (the usual case: LMDB's fdatasync of the data pages comes just before),
// else a 'D' for it alone. The flags are read once per fd (F_GETFL; F_SETFL cannot change O_DSYNC).
//
// Only files named data.mdb inside $HG_REC_DIR (the directory itself or below it) are recorded; the hot
// store, in P26_RUN_DIR, must be outside it.
//
// Intercepted: write, pwrite, pwrite64, writev, pwritev, pwritev64, fsync, fdatasync, close. Memory
// written through a shared writable map (MDB_WRITEMAP) is not seen: the durable store must not use it,
// and this shim refuses to pretend otherwise (msync of a recorded file's map is reported on stderr).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 65536
static signed char watched[MAXFD];  // 0 unknown, 1 yes, -1 no
static signed char dsync[MAXFD];    // 0 unknown, 1 O_DSYNC/O_SYNC, -1 neither
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int logfd = -1;
static uint64_t writes;  // writes recorded so far
static uint64_t synced;  // the highest 'S' recorded: writes [0, synced) are durable
static const char *dir;
static size_t dirlen;    // without trailing slashes

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_msync)(void *, size_t, int);

__attribute__((constructor)) static void init(void) {
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_pwritev64 = dlsym(RTLD_NEXT, "pwritev64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_msync = dlsym(RTLD_NEXT, "msync");
    dir = getenv("HG_REC_DIR");
    if (dir) {
        dirlen = strlen(dir);
        while (dirlen > 1 && dir[dirlen - 1] == '/') dirlen--;
    }
    const char *log = getenv("HG_REC_LOG");
    if (dir && log) logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

// Whether `path` is a data.mdb in $HG_REC_DIR or below it ("/a/state" does not take "/a/state2/...").
static int recorded_path(const char *path) {
    const char *base = strrchr(path, '/');
    return strncmp(path, dir, dirlen) == 0 && path[dirlen] == '/' && base && strcmp(base, "/data.mdb") == 0;
}

static int is_watched(int fd) {
    if (logfd < 0 || fd < 0 || fd >= MAXFD || fd == logfd) return 0;
    signed char w = __atomic_load_n(&watched[fd], __ATOMIC_RELAXED);
    if (w) return w > 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    w = -1;
    if (n > 0) {
        path[n] = 0;
        if (recorded_path(path)) w = 1;
    }
    if (w > 0) {
        int fl = fcntl(fd, F_GETFL);
        __atomic_store_n(&dsync[fd], (signed char)(fl >= 0 && (fl & (O_DSYNC | O_SYNC)) ? 1 : -1),
                         __ATOMIC_RELAXED);
    }
    __atomic_store_n(&watched[fd], w, __ATOMIC_RELAXED);
    return w > 0;
}

static void put(const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t k = real_write(logfd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) abort();  // a recording with a hole would prove nothing
        c += k;
        n -= (size_t)k;
    }
}

// Records bytes [0, done) of the iovecs as written at `off` through `fd`. Called with `mu` held, right
// after the write returned.
static void record(int fd, const struct iovec *iov, int cnt, size_t done, off_t off) {
    uint64_t idx = writes++;
    uint64_t h[3] = {idx, (uint64_t)off, (uint64_t)done};
    put("W", 1);
    put(h, sizeof h);
    for (int i = 0; i < cnt && done > 0; i++) {
        size_t k = iov[i].iov_len < done ? iov[i].iov_len : done;
        put(iov[i].iov_base, k);
        done -= k;
    }
    if (__atomic_load_n(&dsync[fd], __ATOMIC_RELAXED) > 0) {
        // Written and synced when it returned (O_DSYNC/O_SYNC).
        if (synced >= idx) {
            synced = idx + 1;
            put("S", 1);
            put(&synced, sizeof synced);
        } else {
            put("D", 1);
            put(&idx, sizeof idx);
        }
    }
}


#define RECORDED(fd, iov, cnt, off_expr, CALL)                                \
    do {                                                                     \
        if (!is_watched(fd)) return CALL;                                    \
        pthread_mutex_lock(&mu);                                             \
        off_t at = (off_expr);                                               \
        ssize_t r = CALL;                                                    \
        int saved = errno;                                                   \
        if (r > 0) record(fd, iov, cnt, (size_t)r, at);                         \
        pthread_mutex_unlock(&mu);                                           \
        errno = saved;                                                       \
        return r;                                                            \
    } while (0)

ssize_t write(int fd, const void *b, size_t n) {
    struct iovec v = {(void *)b, n};
    RECORDED(fd, &v, 1, lseek(fd, 0, SEEK_CUR), real_write(fd, b, n));
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) {
    struct iovec v = {(void *)b, n};
    RECORDED(fd, &v, 1, o, real_pwrite(fd, b, n, o));
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) {
    struct iovec v = {(void *)b, n};
    RECORDED(fd, &v, 1, o, real_pwrite64(fd, b, n, o));
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    RECORDED(fd, iov, cnt, lseek(fd, 0, SEEK_CUR), real_writev(fd, iov, cnt));
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t o) {
    RECORDED(fd, iov, cnt, o, real_pwritev(fd, iov, cnt, o));
}
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t o) {
    RECORDED(fd, iov, cnt, o, real_pwritev64(fd, iov, cnt, o));
}

static int flush(int fd, int (*call)(int)) {
    if (!is_watched(fd)) return call(fd);
    uint64_t covered;
    pthread_mutex_lock(&mu);  // writes that returned before this call are all counted
    covered = writes;
    pthread_mutex_unlock(&mu);
    int r = call(fd);
    int saved = errno;
    if (r == 0) {
        pthread_mutex_lock(&mu);
        put("S", 1);
        put(&covered, sizeof covered);
        if (covered > synced) synced = covered;
        pthread_mutex_unlock(&mu);
    }
    errno = saved;
    return r;
}
int fsync(int fd) { return flush(fd, real_fsync); }
int fdatasync(int fd) { return flush(fd, real_fdatasync); }

// Whether the mapping holding `a` is of a recorded file (read from /proc/self/maps; msync is rare).
static int recorded_map(void *a) {
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) return 1;  // cannot tell: warn
    char line[4608];
    int hit = 0;
    uintptr_t p = (uintptr_t)a;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        int at = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &at) < 2 || p < lo || p >= hi) continue;
        char *path = at > 0 ? line + at : NULL;
        if (path) path[strcspn(path, "\n")] = 0;
        hit = path && *path == '/' && recorded_path(path);
        break;
    }
    fclose(f);
    return hit;
}

int msync(void *a, size_t n, int flags) {
    if (logfd >= 0 && recorded_map(a)) {
        // A flushed shared map of a recorded data.mdb would be writes this shim cannot see.
        static const char m[] = "recwrite: msync seen; MDB_WRITEMAP stores cannot be recorded\n";
        real_write(2, m, sizeof m - 1);
    }
    return real_msync(a, n, flags);
}

int close(int fd) {
    if (fd >= 0 && fd < MAXFD) {
        __atomic_store_n(&watched[fd], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&dsync[fd], 0, __ATOMIC_RELAXED);
    }
    return real_close(fd);
}
