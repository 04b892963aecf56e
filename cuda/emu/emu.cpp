/* The CPU emulator's scheduler: a block's threads are cooperative fibers on the launching OS thread, switched only
 * at __syncthreads and warp collectives, which are checked rendezvous points. Blocks run one after another.
 * It must never hang or abort on a kernel's bug: every deadlock it can see becomes a launch error with a message. */
#include "emu_internal.h"

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LT_EMU_ASAN 1
#else
#define LT_EMU_ASAN 0
#endif

namespace lt_emu {

namespace {
thread_local Builtins g_builtins;
}

Builtins &builtins() { return g_builtins; }

namespace {

constexpr int kWarp = 32;
// H100 (sm_90) limits; sm_80's are lower, so a kernel that fits here may still need checking on an A100.
constexpr unsigned kMaxThreads = 1024;
constexpr size_t kDefaultSmem = 48 * 1024;
constexpr size_t kMaxSmemOptIn = 227 * 1024;

enum class State { runnable, at_barrier, at_warp, done };

struct Fiber {
    unsigned char *map = nullptr; // guard page + stack
    size_t map_size = 0;
    ucontext_t uc;
    jmp_buf jb;
    bool started = false; // has a live context (it loops: one kernel run per block, then yields as done)
    void *asan_fake = nullptr;
    State state = State::done;
    unsigned linear = 0;
    uint3 tid{};
    // The pending rendezvous.
    const char *file = nullptr;
    int line = 0;
    WarpOp op = WarpOp::syncwarp;
    unsigned mask = 0;
    const void *value = nullptr;
    void *result = nullptr;
    size_t size = 0;
    int arg = 0, width = kWarp;
};

struct SharedArray {
    const void *key;
    void *ptr;
};

struct Launch {
    const char *name;
    dim3 grid, block;
    unsigned nthreads;
    size_t dynamic_smem, smem_limit, static_smem = 0;
    void (*run)(const void *);
    const void *args;
    std::vector<Fiber *> fibers; // nthreads, from the pool
    Fiber *cur = nullptr;
    jmp_buf sched;
    void *sched_fake = nullptr;
    void *dynamic = nullptr;
    std::vector<SharedArray> statics;
    uint64_t seed = 0, rng = 0;
    bool failed = false;
    std::string message;
};

thread_local Launch *g_launch = nullptr;
// The launching thread's stack, for ASan's fiber annotations: learnt when the first fiber starts, kept across launches.
thread_local const void *g_sched_bottom = nullptr;
thread_local size_t g_sched_size = 0;
thread_local std::string g_message;
thread_local bool g_seed_overridden = false;
thread_local uint64_t g_seed_override = 0;
thread_local size_t g_stack_size = LT_EMU_ASAN ? 256 * 1024 : 64 * 1024;
thread_local Stats g_stats{};

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

void asan_start(void **fake, const void *bottom, size_t size) {
#if LT_EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

void asan_finish(void *fake, const void **bottom_old, size_t *size_old) {
#if LT_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
#else
    (void)fake, (void)bottom_old, (void)size_old;
#endif
}

// Fibers outlive launches: creating 1024 stacks per launch would cost more than most kernels.
struct Pool {
    std::vector<Fiber *> fibers;
    size_t stack_size = 0;
    void clear() {
        for (Fiber *f : fibers) {
            munmap(f->map, f->map_size);
            delete f;
        }
        fibers.clear();
    }
    ~Pool() { clear(); }
};
thread_local Pool g_pool;

void fiber_main();

unsigned char *stack_base(const Fiber *f) { return f->map + page_size(); }
size_t stack_bytes(const Fiber *f) { return f->map_size - page_size(); }

// Gives f a fresh context that starts in fiber_main (again, after a launch abandoned it mid-kernel).
void fiber_reset(Fiber *f) {
#if LT_EMU_ASAN
    __asan_unpoison_memory_region(stack_base(f), stack_bytes(f)); // an abandoned frame leaves its redzones
#endif
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = stack_base(f);
    f->uc.uc_stack.ss_size = stack_bytes(f);
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, fiber_main, 0);
    f->started = false;
}

bool pool_reserve(unsigned n, std::string *err) {
    if (g_pool.stack_size != g_stack_size) g_pool.clear();
    g_pool.stack_size = g_stack_size;
    while (g_pool.fibers.size() < n) {
        size_t bytes = page_size() + ((g_stack_size + page_size() - 1) / page_size()) * page_size();
        void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            *err = "cannot map a fiber stack: " + std::string(strerror(errno));
            return false;
        }
        mprotect(m, page_size(), PROT_NONE); // the guard page: a stack overflow faults instead of corrupting
        Fiber *f = new Fiber;
        f->map = static_cast<unsigned char *>(m);
        f->map_size = bytes;
        fiber_reset(f);
        g_pool.fibers.push_back(f);
    }
    return true;
}

std::string dim_str(uint3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}
std::string dim_str(dim3 d) { return dim_str(uint3{d.x, d.y, d.z}); }
std::string site_str(const Fiber *f) { return std::string(f->file) + ":" + std::to_string(f->line); }

const char *op_name(WarpOp op) {
    switch (op) {
    case WarpOp::shfl: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::any: return "__any_sync";
    case WarpOp::all: return "__all_sync";
    case WarpOp::syncwarp: return "__syncwarp";
    }
    return "?";
}

std::string where(const Fiber *f) {
    switch (f->state) {
    case State::done: return "has exited";
    case State::at_barrier: return "waits at __syncthreads() at " + site_str(f);
    case State::at_warp: return "waits at " + std::string(op_name(f->op)) + " at " + site_str(f);
    case State::runnable: return "is running";
    }
    return "?";
}

// Records the first error of the launch; the scheduler stops at the next switch.
void fail(Launch *L, const std::string &what) {
    if (L->failed) return;
    L->failed = true;
    L->message = "lt_emu: kernel " + std::string(L->name) + ", block " + dim_str(g_builtins.block_idx) + ": " + what;
}

// Fiber side: back to the scheduler; returns when the scheduler resumes this fiber.
void yield(Fiber *f) {
    Launch *L = g_launch;
    ++g_stats.switches;
    if (_setjmp(f->jb) == 0) {
        asan_start(&f->asan_fake, g_sched_bottom, g_sched_size);
        _longjmp(L->sched, 1);
    }
    asan_finish(f->asan_fake, nullptr, nullptr);
}

void fiber_main() {
    asan_finish(nullptr, &g_sched_bottom, &g_sched_size);
    for (;;) {
        Launch *L = g_launch;
        Fiber *f = L->cur;
        L->run(L->args);
        f->state = State::done;
        yield(f); // resumed for this fiber's thread of the next block (or of a later launch)
    }
}

// Scheduler side: runs f until its next rendezvous or its end.
void resume(Launch *L, Fiber *f) {
    L->cur = f;
    g_builtins.thread_idx = f->tid;
    if (_setjmp(L->sched) == 0) {
        asan_start(&L->sched_fake, stack_base(f), stack_bytes(f));
        if (!f->started) {
            f->started = true;
            setcontext(&f->uc);
        }
        _longjmp(f->jb, 1);
    }
    asan_finish(L->sched_fake, nullptr, nullptr);
    L->cur = nullptr;
}

uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

Fiber *lane_fiber(Launch *L, unsigned warp, int lane) {
    unsigned i = warp * kWarp + static_cast<unsigned>(lane);
    return i < L->nthreads ? L->fibers[i] : nullptr;
}

// The lane whose value `lane` receives, or -1 for "its own", following the CUDA programming guide's rules.
int source_lane(const Fiber *f, int lane) {
    int w = f->width, base = lane - lane % w;
    switch (f->op) {
    case WarpOp::shfl: return base + ((f->arg % w) + w) % w;
    case WarpOp::shfl_up: return lane - f->arg >= base ? lane - f->arg : -1;
    case WarpOp::shfl_down: return lane + f->arg < base + w ? lane + f->arg : -1;
    case WarpOp::shfl_xor: return (lane ^ f->arg) < base + w ? (lane ^ f->arg) : -1;
    default: return -1;
    }
}

// Completes the collective of the lanes in `mask` once all of them wait at it.
void exchange(Launch *L, unsigned warp, unsigned mask) {
    Fiber *first = nullptr;
    unsigned ballot = 0, count = 0;
    for (int l = 0; l < kWarp; l++) {
        if (!(mask >> l & 1u)) continue;
        Fiber *g = lane_fiber(L, warp, l);
        if (!first) first = g;
        count++;
        if (first->op == WarpOp::ballot || first->op == WarpOp::any || first->op == WarpOp::all) {
            if (*static_cast<const int *>(g->value)) ballot |= 1u << l;
        }
    }
    for (int l = 0; l < kWarp; l++) {
        if (!(mask >> l & 1u)) continue;
        Fiber *g = lane_fiber(L, warp, l);
        unsigned out = 0;
        switch (g->op) {
        case WarpOp::ballot: out = ballot; break;
        case WarpOp::any: out = ballot != 0; break;
        case WarpOp::all: out = static_cast<unsigned>(__builtin_popcount(ballot)) == count; break;
        case WarpOp::syncwarp: break;
        default: {
            int src = source_lane(g, l);
            if (src < 0) src = l;
            if (src < kWarp && (mask >> src & 1u)) {
                memcpy(g->result, lane_fiber(L, warp, src)->value, g->size);
            } else {
                memset(g->result, 0xFF, g->size); // undefined on a GPU (source lane not in the mask): poison it
            }
            break;
        }
        }
        if (g->op == WarpOp::ballot || g->op == WarpOp::any || g->op == WarpOp::all)
            memcpy(g->result, &out, sizeof out);
        g->state = State::runnable;
    }
}

/* Tries to complete warp collectives. Returns true when some lanes can go on; sets an error for a mask that can
 * never be satisfied (a lane absent, exited, or waiting at a different collective). */
bool resolve_warps(Launch *L) {
    bool progress = false;
    unsigned nwarps = (L->nthreads + kWarp - 1) / kWarp;
    for (unsigned w = 0; w < nwarps && !L->failed; w++) {
        for (int l = 0; l < kWarp && !L->failed; l++) {
            Fiber *f = lane_fiber(L, w, l);
            if (!f || f->state != State::at_warp) continue;
            std::string who = "thread " + dim_str(f->tid) + " (warp " + std::to_string(w) + ", lane " +
                              std::to_string(l) + ") at " + op_name(f->op) + " " + site_str(f);
            char mask_hex[16];
            snprintf(mask_hex, sizeof mask_hex, "0x%08x", f->mask);
            if (!(f->mask >> l & 1u)) {
                fail(L, who + ": mask " + mask_hex + " does not include the calling lane");
                break;
            }
            bool ready = true;
            for (int m = 0; m < kWarp && !L->failed; m++) {
                if (!(f->mask >> m & 1u)) continue;
                Fiber *g = lane_fiber(L, w, m);
                std::string lane = "lane " + std::to_string(m);
                if (!g) {
                    fail(L, who + ": mask " + mask_hex + " names " + lane + ", which is not in the block (" +
                                std::to_string(L->nthreads) + " threads)");
                } else if (g->state == State::done) {
                    fail(L, who + ": mask " + mask_hex + " names " + lane + ", which has exited");
                } else if (g->state == State::at_warp &&
                           (g->op != f->op || g->mask != f->mask || g->size != f->size || g->width != f->width)) {
                    fail(L, who + ": mask " + mask_hex + " names " + lane + ", which " + where(g) +
                                " with a different op, mask, width or value size");
                } else if (g->state != State::at_warp) {
                    ready = false;
                }
            }
            if (L->failed) break;
            if (f->op != WarpOp::ballot && f->op != WarpOp::any && f->op != WarpOp::all &&
                (f->width < 1 || f->width > kWarp || (f->width & (f->width - 1)))) {
                fail(L, who + ": width " + std::to_string(f->width) + " is not a power of 2 up to 32");
                break;
            }
            if (ready) {
                exchange(L, w, f->mask);
                progress = true;
            }
        }
    }
    return progress;
}

// Nothing runnable and no collective completes: either a full barrier, the end of the block, or a bug.
bool resolve_block(Launch *L) {
    Fiber *at_barrier = nullptr, *other = nullptr;
    for (Fiber *f : L->fibers) {
        if (f->state == State::at_barrier && !at_barrier) at_barrier = f;
        if (f->state != State::at_barrier && !other) other = f;
    }
    if (!at_barrier) {
        if (other && other->state != State::done) {
            fail(L, "thread " + dim_str(other->tid) + " " + where(other) + " and its partners can never arrive");
        }
        return false; // all done, or failed
    }
    for (Fiber *f : L->fibers) {
        if (f->state == State::at_barrier && f->file == at_barrier->file && f->line == at_barrier->line) continue;
        unsigned n = 0;
        for (Fiber *g : L->fibers)
            n += g->state == State::at_barrier && g->line == at_barrier->line && g->file == at_barrier->file;
        fail(L, "__syncthreads() at " + site_str(at_barrier) + " reached by " + std::to_string(n) + " of " +
                    std::to_string(L->nthreads) + " threads; thread " + dim_str(f->tid) + " " + where(f));
        return false;
    }
    for (Fiber *f : L->fibers) f->state = State::runnable;
    return true;
}

void run_block(Launch *L) {
    for (Fiber *f : L->fibers) f->state = State::runnable;
    std::vector<Fiber *> order;
    for (;;) {
        order.clear();
        for (Fiber *f : L->fibers) {
            if (f->state == State::runnable) order.push_back(f);
        }
        if (L->seed) {
            for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[splitmix(&L->rng) % i]);
        }
        for (Fiber *f : order) {
            resume(L, f);
            if (L->failed) return;
        }
        if (resolve_warps(L)) continue;
        if (L->failed || !resolve_block(L)) return;
    }
}

void free_shared(Launch *L) {
    for (SharedArray &s : L->statics) free(s.ptr);
    L->statics.clear();
    free(L->dynamic);
    L->dynamic = nullptr;
    L->static_smem = 0;
}

// Shared memory starts as NaN bytes, not zeros: a kernel that reads before it writes shows it in its results.
void *alloc_smem(size_t bytes, size_t align) {
    void *p = aligned_alloc(std::max<size_t>(align, 16), ((std::max<size_t>(bytes, 1) + 15) / 16) * 16);
    if (p) memset(p, 0xFF, bytes);
    return p;
}

Launch *current(const char *what) {
    Launch *L = g_launch;
    if (!L || !L->cur) {
        fprintf(stderr, "lt_emu: %s called outside a kernel\n", what);
        abort(); // host code calling device code: a bug in the program, not in a kernel
    }
    return L;
}

// Stops the calling fiber for good: the scheduler sees the error and abandons the block.
[[noreturn]] void abandon(Launch *L) {
    Fiber *f = L->cur;
    yield(f);
    fprintf(stderr, "lt_emu: a failed fiber was resumed\n");
    abort();
}

} // namespace

void syncthreads(const char *file, int line) {
    Launch *L = current("__syncthreads");
    Fiber *f = L->cur;
    f->state = State::at_barrier;
    f->file = file;
    f->line = line;
    yield(f);
}

void warp_collective(WarpOp op, unsigned mask, const void *value, void *result, size_t size, int arg, int width,
                     const char *file, int line) {
    Launch *L = current(op_name(op));
    Fiber *f = L->cur;
    f->state = State::at_warp;
    f->op = op;
    f->mask = mask;
    f->value = value;
    f->result = result;
    f->size = size;
    f->arg = arg;
    f->width = width;
    f->file = file;
    f->line = line;
    yield(f);
}

void *shared_static(const void *key, size_t bytes, size_t align, const char *name) {
    Launch *L = current("LT_SHARED");
    for (const SharedArray &s : L->statics) {
        if (s.key == key) return s.ptr;
    }
    if (L->static_smem + bytes + L->dynamic_smem > L->smem_limit) {
        fail(L, "shared array " + std::string(name) + " (" + std::to_string(bytes) + " bytes) takes the block's " +
                    "shared memory to " + std::to_string(L->static_smem + bytes + L->dynamic_smem) +
                    " bytes, over the limit of " + std::to_string(L->smem_limit));
        abandon(L);
    }
    void *p = alloc_smem(bytes, align);
    if (!p) {
        fail(L, "out of host memory for shared array " + std::string(name));
        abandon(L);
    }
    L->static_smem += bytes;
    L->statics.push_back({key, p});
    return p;
}

void *shared_dynamic() {
    Launch *L = current("LT_DYNAMIC_SHARED");
    return L->dynamic;
}

void kernel_fail(const char *fmt, ...) {
    Launch *L = current("kernel_fail");
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fail(L, buf);
    abandon(L);
}

cudaError_t launch_erased(const char *name, const void *func, dim3 grid, dim3 block, size_t dynamic_smem,
                          cudaStream_t stream, void (*run)(const void *), const void *args) {
    auto refuse = [&](cudaError_t err, const std::string &why) {
        g_message = "lt_emu: kernel " + std::string(name) + ": " + why;
        return internal::set_last_error(err);
    };
    if (g_launch) return refuse(cudaErrorNotSupported, "launched from inside a kernel (dynamic parallelism)");
    if (!internal::stream_valid(stream)) return refuse(cudaErrorInvalidResourceHandle, "unknown stream");
    uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
    if (threads == 0 || threads > kMaxThreads || block.x > 1024 || block.y > 1024 || block.z > 64) {
        return refuse(cudaErrorInvalidConfiguration,
                      "block " + dim_str(block) + " has " + std::to_string(threads) + " threads (1 to 1024, z <= 64)");
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        return refuse(cudaErrorInvalidConfiguration, "grid " + dim_str(grid) + " is empty or over the limits");
    }
    size_t limit = internal::max_dynamic_smem(func);
    limit = limit ? limit : kDefaultSmem;
    if (dynamic_smem > limit) {
        return refuse(cudaErrorInvalidValue,
                      std::to_string(dynamic_smem) + " bytes of dynamic shared memory, over " + std::to_string(limit) +
                          (limit == kDefaultSmem ? " (raise it with cudaFuncSetAttribute)" : ""));
    }
    Launch launch;
    Launch *L = &launch;
    L->name = name;
    L->grid = grid;
    L->block = block;
    L->nthreads = static_cast<unsigned>(threads);
    L->dynamic_smem = dynamic_smem;
    L->smem_limit = limit;
    L->run = run;
    L->args = args;
    L->seed = shuffle_seed();
    std::string err;
    if (!pool_reserve(L->nthreads, &err)) return refuse(cudaErrorMemoryAllocation, err);
    L->fibers.assign(g_pool.fibers.begin(), g_pool.fibers.begin() + L->nthreads);
    for (unsigned i = 0; i < L->nthreads; i++) {
        Fiber *f = L->fibers[i];
        f->linear = i;
        f->tid = uint3{i % block.x, i / block.x % block.y, i / (block.x * block.y)};
    }
    ++g_stats.launches;
    g_launch = L;
    g_builtins.block_dim = block;
    g_builtins.grid_dim = grid;
    uint3 saved_thread = g_builtins.thread_idx, saved_block = g_builtins.block_idx;
    for (unsigned z = 0; z < grid.z && !L->failed; z++) {
        for (unsigned y = 0; y < grid.y && !L->failed; y++) {
            for (unsigned x = 0; x < grid.x && !L->failed; x++) {
                g_builtins.block_idx = uint3{x, y, z};
                L->rng = L->seed ^ (static_cast<uint64_t>(x) << 1 | static_cast<uint64_t>(y) << 32 | z);
                L->dynamic = alloc_smem(dynamic_smem, 16);
                if (!L->dynamic) fail(L, "out of host memory for dynamic shared memory");
                if (!L->failed) run_block(L);
                free_shared(L);
                ++g_stats.blocks;
            }
        }
    }
    g_launch = nullptr;
    g_builtins.thread_idx = saved_thread;
    g_builtins.block_idx = saved_block;
    if (!L->failed) return internal::set_last_error(cudaSuccess);
    // The block was abandoned mid-kernel: its fibers' contexts are stale.
    for (Fiber *f : L->fibers) {
        if (f->started && f->state != State::done) fiber_reset(f);
    }
    g_message = L->message;
    if (getenv("LT_EMU_VERBOSE")) fprintf(stderr, "%s\n", g_message.c_str());
    return internal::set_last_error(cudaErrorLaunchFailure);
}

void set_shuffle(uint64_t seed) {
    g_seed_overridden = true;
    g_seed_override = seed;
}

void reset_shuffle() { g_seed_overridden = false; }

uint64_t shuffle_seed() {
    if (g_seed_overridden) return g_seed_override;
    const char *s = getenv("LT_EMU_SHUFFLE");
    return s ? strtoull(s, nullptr, 0) : 0;
}

void set_stack_size(size_t bytes) { g_stack_size = std::max<size_t>(bytes, 16 * 1024); }

const char *last_message() { return g_message.c_str(); }

Stats stats() { return g_stats; }

namespace internal {
void set_message(const std::string &m) { g_message = m; }
} // namespace internal

} // namespace lt_emu
