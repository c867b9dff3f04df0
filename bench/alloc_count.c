/* A counting allocator hook for bench/allocations.sh: preloaded into pgmux, it counts every
 * heap allocation (malloc and its relatives, which operator new and coroutine frames use too)
 * and keeps the count in $ALLOC_COUNT_FILE, rewritten every 20 ms by a thread of its own (the
 * process may end with _Exit, and a reader wants the count mid-run). Forwards to glibc's own
 * allocator entry points, so it allocates nothing itself. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);

static atomic_ulong allocations;

void* malloc(size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(size_t align, size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_memalign(align, n);
}
void* aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void** out, size_t align, size_t n) {
  void* p = memalign(align, n);
  if (p == NULL) return 12; /* ENOMEM */
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }

static int report_fd = -1;

static void* report(void* unused) {
  (void)unused;
  const struct timespec period = {0, 20 * 1000 * 1000};
  for (;;) {
    char line[32];
    /* Fixed width, so each rewrite covers the last one. */
    int len = snprintf(line, sizeof line, "%20lu\n", atomic_load(&allocations));
    if (len > 0) (void)!pwrite(report_fd, line, (size_t)len, 0);
    nanosleep(&period, NULL);
  }
  return NULL;
}

__attribute__((constructor)) static void start_reporting(void) {
  const char* path = getenv("ALLOC_COUNT_FILE");
  if (path == NULL) return;
  report_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (report_fd < 0) return;
  pthread_t thread;
  pthread_create(&thread, NULL, report, NULL);
  pthread_detach(thread);
}
