/*
 * A stand-in for the pto-runtime host library (libpto_runtime.so), exporting the flat host C API
 * that src/device/ascend.rs binds (hw-native-sys/simpler @ f5cb8163c7b6,
 * src/a2a3/platform/include/host/pto_runtime_c_api.h), with the same signatures.
 *
 * "Device" memory is host memory. Every call is appended to a log that the tests read through
 * mock_call_log(); mock_fail() makes one call return a chosen failure code. The "task graph" the
 * launch executes is fixed: out = a + b over f32, with a, b, out the first three tensors of the
 * tapwheel argument convention (device address, byte length per tensor, then scalars).
 *
 * Built by tests/ascend_bridge.rs with `cc -shared -fPIC`:
 *   -DMOCK_PARTIAL        exports only set_device, get_runtime_size, device_malloc, device_free
 *   -DMOCK_LATER_FAMILY   also exports run_runtime (a symbol of a later pto-runtime API family)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOCK_RUNTIME_SIZE 1000 /* deliberately not a multiple of 64 */

static char g_log[16384];
static size_t g_log_len;
static char g_fail_call[64];
static int g_fail_rc;
static long g_live_allocations;

static void log_call(const char *fmt, ...) {
    if (g_log_len + 1 >= sizeof g_log) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_log + g_log_len, sizeof g_log - g_log_len - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    g_log_len += (size_t)n;
    if (g_log_len >= sizeof g_log - 1) g_log_len = sizeof g_log - 2;
    g_log[g_log_len++] = '\n';
    g_log[g_log_len] = '\0';
}

static int injected(const char *call) { return strcmp(call, g_fail_call) == 0 ? g_fail_rc : 0; }

/* ---- test hooks (not part of pto-runtime) ---- */

/* Copies the call log (one call per line) into buf; returns its full length. */
size_t mock_call_log(char *buf, size_t cap) {
    if (buf != NULL && cap > 0) {
        size_t n = g_log_len < cap - 1 ? g_log_len : cap - 1;
        memcpy(buf, g_log, n);
        buf[n] = '\0';
    }
    return g_log_len;
}

/* From now on, `call` returns `rc` (device_malloc returns NULL when rc != 0). */
void mock_fail(const char *call, int rc) {
    strncpy(g_fail_call, call, sizeof g_fail_call - 1);
    g_fail_rc = rc;
}

/* device_malloc'd buffers not yet device_free'd. */
long mock_live_allocations(void) { return g_live_allocations; }

/* ---- the pinned API ---- */

int set_device(int device_id) {
    log_call("set_device(%d)", device_id);
    if (device_id == 7) return -7; /* "no such device" */
    return injected("set_device");
}

size_t get_runtime_size(void) {
    log_call("get_runtime_size");
    return MOCK_RUNTIME_SIZE;
}

void *device_malloc(size_t size) {
    log_call("device_malloc(%zu)", size);
    if (injected("device_malloc")) return NULL;
    void *p = malloc(size);
    if (p != NULL) g_live_allocations++;
    return p;
}

void device_free(void *dev_ptr) {
    log_call("device_free");
    if (dev_ptr == NULL) return;
    free(dev_ptr);
    g_live_allocations--;
}

#ifndef MOCK_PARTIAL

static void *g_runtime;
static uint64_t g_args[64];
static int g_nargs;

int copy_to_device(void *dev_ptr, const void *host_ptr, size_t size) {
    log_call("copy_to_device(%zu)", size);
    if (dev_ptr == NULL || host_ptr == NULL) return -1;
    int rc = injected("copy_to_device");
    if (rc) return rc;
    memcpy(dev_ptr, host_ptr, size);
    return 0;
}

int copy_from_device(void *host_ptr, const void *dev_ptr, size_t size) {
    log_call("copy_from_device(%zu)", size);
    if (dev_ptr == NULL || host_ptr == NULL) return -1;
    int rc = injected("copy_from_device");
    if (rc) return rc;
    memcpy(host_ptr, dev_ptr, size);
    return 0;
}

int init_runtime(void *runtime, const uint8_t *orch_so_binary, size_t orch_so_size,
                 const char *orch_func_name, uint64_t *func_args, int func_args_count,
                 int *arg_types, uint64_t *arg_sizes, const int *kernel_func_ids,
                 const uint8_t *const *kernel_binaries, const size_t *kernel_sizes,
                 int kernel_count) {
    char ids[256] = "";
    size_t used = 0;
    for (int i = 0; i < kernel_count && used + 16 < sizeof ids; i++) {
        used += (size_t)snprintf(ids + used, sizeof ids - used, "%s%d:%zu", i ? "," : "",
                                 kernel_func_ids[i], kernel_sizes[i]);
        (void)kernel_binaries[i][0]; /* the binary is readable */
    }
    int scalar_types = 1;
    for (int i = 0; i < func_args_count; i++) {
        if (arg_types[i] != 0 || arg_sizes[i] != 0) scalar_types = 0;
    }
    log_call("init_runtime(orch=%zu:%.*s,entry=%s,args=%d,scalar_types=%d,kernels=[%s])",
             orch_so_size, (int)orch_so_size, (const char *)orch_so_binary, orch_func_name,
             func_args_count, scalar_types, ids);
    if (runtime == NULL || ((uintptr_t)runtime % 64) != 0) return -100;
    memset(runtime, 0xA5, MOCK_RUNTIME_SIZE); /* the whole object is writable */
    int rc = injected("init_runtime");
    if (rc) return rc;
    if (func_args_count > 64) return -101;
    memcpy(g_args, func_args, sizeof(uint64_t) * (size_t)func_args_count);
    g_nargs = func_args_count;
    g_runtime = runtime;
    return 0;
}

int launch_runtime(void *runtime, int aicpu_thread_num, int block_dim, int device_id,
                   const uint8_t *aicpu_binary, size_t aicpu_size, const uint8_t *aicore_binary,
                   size_t aicore_size, int orch_thread_num, int round_idx) {
    log_call("launch_runtime(aicpu_threads=%d,block_dim=%d,device=%d,aicpu=%zu,aicore=%zu,"
             "orch_threads=%d,round=%d)",
             aicpu_thread_num, block_dim, device_id, aicpu_size, aicore_size, orch_thread_num,
             round_idx);
    if (runtime == NULL || runtime != g_runtime) return -100;
    if (aicpu_binary == NULL || aicpu_size == 0 || aicore_binary == NULL || aicore_size == 0)
        return -1;
    int rc = injected("launch_runtime");
    if (rc) return rc;
    /* The fixed task graph: out = a + b. */
    if (g_nargs < 6) return -102;
    const float *a = (const float *)(uintptr_t)g_args[0];
    const float *b = (const float *)(uintptr_t)g_args[2];
    float *out = (float *)(uintptr_t)g_args[4];
    size_t n = (size_t)g_args[5] / sizeof(float);
    if (g_args[1] < g_args[5] || g_args[3] < g_args[5]) return -103;
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return 0;
}

int finalize_runtime(void *runtime) {
    log_call("finalize_runtime");
    if (runtime == NULL || runtime != g_runtime) return -100;
    g_runtime = NULL;
    return injected("finalize_runtime");
}

/* Exported by the pinned library too, but not needed by the bridge. */
void record_tensor_pair(void *runtime, void *host_ptr, void *dev_ptr, size_t size) {
    (void)runtime;
    (void)host_ptr;
    (void)dev_ptr;
    (void)size;
    log_call("record_tensor_pair");
}

#endif /* MOCK_PARTIAL */

#ifdef MOCK_LATER_FAMILY
int run_runtime(void *ctx) {
    (void)ctx;
    log_call("run_runtime");
    return 0;
}
#endif
