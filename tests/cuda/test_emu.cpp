/* Tests of the CPU emulator (cuda/emu/): the self-test kernels against CPU references at odd sizes, the bugs it must
 * report (missing, divergent barriers; bad shuffle masks; launch limits), the runtime-API shim, and cuRAND's Philox
 * against libtrain's CPU Philox. Usage: test_cuda_emu <case>|all. Kernel code comes in as C++ from the .cu itself. */
#include "emu/kernels_selftest.cu"

#include "core/philox.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

int g_failures = 0;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            g_failures++;                                                                                              \
        }                                                                                                              \
    } while (0)

#define CHECK_CUDA(call) CHECK((call) == cudaSuccess, "%s: %s", #call, ::lt_emu::last_message())

const int kSizes[] = {1, 31, 32, 33, 255, 257};

// Deterministic inputs, never all zeros or ones.
std::vector<float> random_floats(size_t n, uint64_t seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = (float)((lt__philox_word(seed, i) >> 8) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
    return v;
}

// A device buffer filled from (or NaN-filled for) a host vector; the emulator's cudaMalloc already poisons it.
template <class T> struct DeviceBuffer {
    T *ptr = nullptr;
    size_t n;
    explicit DeviceBuffer(size_t count) : n(count) { CHECK_CUDA(cudaMalloc((void **)&ptr, n * sizeof(T))); }
    explicit DeviceBuffer(const std::vector<T> &host) : DeviceBuffer(host.size()) {
        CHECK_CUDA(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
    ~DeviceBuffer() { cudaFree(ptr); }
    std::vector<T> get() const {
        std::vector<T> host(n);
        CHECK_CUDA(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
        return host;
    }
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
};

unsigned blocks_for(int n, int per_block) { return (unsigned)((n + per_block - 1) / per_block); }

void test_reduce() {
    for (int n : {1, 31, 32, 33, 255, 257, 10007}) {
        for (int block : {32, 64, 256}) {
            std::vector<float> x = random_floats(n, 1000 + n);
            double ref = 0, mag = 0;
            for (float v : x) ref += v, mag += std::fabs(v);
            // At most 3 blocks, so larger inputs take the grid-stride loop and the grid is no multiple of anything.
            unsigned grid = std::min(blocks_for(n, block), 3u);
            DeviceBuffer<float> dx(x), partial(grid);
            LT_LAUNCH(selftest_reduce_sum, grid, block, 0, 0, dx.ptr, n, partial.ptr);
            CHECK_CUDA(cudaGetLastError());
            double sum = 0;
            for (float p : partial.get()) sum += p;
            CHECK(std::fabs(sum - ref) <= 1e-6 * mag + 1e-7, "n=%d block=%d: %.9g vs %.9g", n, block, sum, ref);
        }
    }
}

void test_transpose() {
    for (int rows : kSizes) {
        for (int cols : kSizes) {
            for (int block_rows : {1, 2, 8}) {
                std::vector<float> in = random_floats((size_t)rows * cols, 7 * rows + cols);
                DeviceBuffer<float> din(in), dout((size_t)rows * cols);
                LT_LAUNCH(selftest_transpose, dim3(blocks_for(cols, 32), blocks_for(rows, 32)), dim3(32, block_rows), 0,
                          0, din.ptr, dout.ptr, rows, cols);
                CHECK_CUDA(cudaGetLastError());
                std::vector<float> out = dout.get();
                int bad = 0;
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) bad += out[(size_t)c * rows + r] != in[(size_t)r * cols + c];
                }
                CHECK(bad == 0, "%dx%d, block (32,%d): %d wrong", rows, cols, block_rows, bad);
            }
        }
    }
}

void test_dynamic_smem() {
    for (int n : {1, 31, 32, 33, 255, 257}) {
        for (int block : {32, 64, 256}) {
            std::vector<float> in = random_floats(n, 50 + n);
            DeviceBuffer<float> din(in), dout(n);
            LT_LAUNCH(selftest_reverse_chunks, blocks_for(n, block), block, block * sizeof(float), 0, din.ptr, dout.ptr,
                      n);
            CHECK_CUDA(cudaGetLastError());
            std::vector<float> out = dout.get();
            int bad = 0;
            for (int base = 0; base < n; base += block) {
                int len = std::min(block, n - base);
                for (int t = 0; t < len; t++) bad += out[base + t] != in[base + len - 1 - t];
            }
            CHECK(bad == 0, "n=%d block=%d: %d wrong", n, block, bad);
        }
    }
}

// The programming guide's rules, written independently of the emulator's scheduler.
void test_warp_ops() {
    for (int width : {32, 16, 8, 4, 2, 1}) {
        for (int delta : {0, 1, 3, 5, 17}) {
            std::vector<int> in(64);
            for (int t = 0; t < 64; t++) in[t] = (int)(lt__philox_word(width * 100 + delta, t) % 201) - 100;
            DeviceBuffer<int> din(in), dout(7 * 64);
            LT_LAUNCH(selftest_warp_ops, 1, 64, 0, 0, din.ptr, dout.ptr, delta, width);
            CHECK_CUDA(cudaGetLastError());
            std::vector<int> out = dout.get();
            for (int t = 0; t < 64; t++) {
                int w0 = t / 32 * 32, lane = t % 32, base = lane - lane % width;
                int up = lane - delta >= base ? lane - delta : lane,
                    down = lane + delta < base + width ? lane + delta : lane;
                int x = (lane ^ delta) < base + width ? lane ^ delta : lane;
                unsigned ballot = 0;
                for (int l = 0; l < 32; l++) ballot |= (unsigned)(in[w0 + l] > 0) << l;
                int want[7] = {
                    in[w0 + base + delta % width], in[w0 + up], in[w0 + down], in[w0 + x], (int)ballot, ballot != 0,
                    ballot == 0xffffffffu};
                for (int k = 0; k < 7; k++) {
                    CHECK(out[7 * t + k] == want[k], "width=%d delta=%d thread %d op %d: %d, want %d", width, delta, t,
                          k, out[7 * t + k], want[k]);
                }
            }
        }
    }
}

// Runs adjacent difference with `kernel` under `seed`; returns the number of wrong outputs.
int adjacent_diff_errors(void (*kernel)(const float *, float *, int), uint64_t seed, int n, int block) {
    std::vector<float> in = random_floats(n, 99);
    DeviceBuffer<float> din(in), dout(n);
    lt_emu::set_shuffle(seed);
    LT_LAUNCH(kernel, blocks_for(n, block), block, 0, 0, din.ptr, dout.ptr, n);
    lt_emu::reset_shuffle();
    CHECK_CUDA(cudaGetLastError());
    std::vector<float> out = dout.get();
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float want = in[i] - (i % block ? in[i - 1] : 0.0f);
        bad += !(out[i] == want);
    }
    return bad;
}

void test_missing_barrier() {
    const int n = 257, block = 64;
    // In index order the bug hides: thread t-1 has written its slot before thread t runs.
    CHECK(adjacent_diff_errors(selftest_adjacent_diff_missing_barrier, 0, n, block) == 0, "in order");
    int caught = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        caught += adjacent_diff_errors(selftest_adjacent_diff_missing_barrier, seed, n, block) > 0;
        CHECK(adjacent_diff_errors(selftest_adjacent_diff, seed, n, block) == 0, "fixed twin, seed %llu",
              (unsigned long long)seed);
    }
    CHECK(caught == 8, "the missing barrier showed under %d of 8 seeds", caught);
}

// Launches a buggy kernel and checks that it failed with a message containing every one of `words`.
void expect_launch_failure(const char *what, const std::function<void()> &launch,
                           std::initializer_list<const char *> words) {
    launch();
    cudaError_t err = cudaGetLastError();
    CHECK(err == cudaErrorLaunchFailure, "%s: got %s", what, cudaGetErrorName(err));
    CHECK(cudaGetLastError() == cudaSuccess, "%s: cudaGetLastError did not reset", what);
    std::string msg = lt_emu::last_message();
    for (const char *w : words)
        CHECK(msg.find(w) != std::string::npos, "%s: no \"%s\" in \"%s\"", what, w, msg.c_str());
    printf("%s -> %s\n", what, msg.c_str());
}

// After a failed launch the emulator must be usable again (its abandoned fibers restarted).
void expect_recovered() {
    DeviceBuffer<int> out(64);
    LT_LAUNCH(selftest_divergent_barrier, 1, 64, 0, 0, 2, out.ptr); // mode 2: every thread at the odd/even barriers
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure, "mode 2 is divergent too");
    std::vector<float> x = random_floats(100, 5);
    DeviceBuffer<float> dx(x), partial(1);
    LT_LAUNCH(selftest_reduce_sum, 1, 64, 0, 0, dx.ptr, 100, partial.ptr);
    CHECK_CUDA(cudaGetLastError());
    double ref = 0;
    for (float v : x) ref += v;
    CHECK(std::fabs(partial.get()[0] - ref) < 1e-4, "after a failure: %g vs %g", partial.get()[0], ref);
}

void test_divergent_barrier() {
    DeviceBuffer<int> out(64);
    expect_launch_failure(
        "half the block exits", [&] { LT_LAUNCH(selftest_divergent_barrier, 2, 64, 0, 0, 0, out.ptr); },
        {"selftest_divergent_barrier", "block (0,0,0)", "__syncthreads()", "reached by 32 of 64", "has exited"});
    expect_launch_failure("two barriers", [&] { LT_LAUNCH(selftest_divergent_barrier, 1, 64, 0, 0, 1, out.ptr); },
                          {"reached by 32 of 64", "waits at __syncthreads() at", "kernels_selftest.cu"});
    expect_recovered();
}

void test_bad_shuffle_mask() {
    DeviceBuffer<int> out(64);
    expect_launch_failure("exited lanes", [&] { LT_LAUNCH(selftest_bad_shuffle_mask, 1, 64, 0, 0, 0, out.ptr); },
                          {"__shfl_down_sync", "mask 0xffffffff", "lane 16, which has exited"});
    expect_launch_failure("absent lanes", [&] { LT_LAUNCH(selftest_bad_shuffle_mask, 1, 48, 0, 0, 1, out.ptr); },
                          {"warp 1", "not in the block (48 threads)"});
    expect_launch_failure("caller not in mask", [&] { LT_LAUNCH(selftest_bad_shuffle_mask, 1, 32, 0, 0, 2, out.ptr); },
                          {"0xfffffffe", "does not include the calling lane"});
    // The same kernel with a whole warp is correct: v + the next lane's v (the last lane keeps its own).
    LT_LAUNCH(selftest_bad_shuffle_mask, 1, 64, 0, 0, 1, out.ptr);
    CHECK_CUDA(cudaGetLastError());
    std::vector<int> o = out.get();
    for (int t = 0; t < 64; t++) CHECK(o[t] == t + (t % 32 == 31 ? t : t + 1), "thread %d: %d", t, o[t]);
}

void expect_refused(const char *what, cudaError_t want, const char *word) {
    cudaError_t err = cudaGetLastError();
    CHECK(err == want, "%s: got %s, want %s", what, cudaGetErrorName(err), cudaGetErrorName(want));
    CHECK(strstr(lt_emu::last_message(), word), "%s: no \"%s\" in \"%s\"", what, word, lt_emu::last_message());
}

void test_launch_config() {
    DeviceBuffer<float> out(1024);
    DeviceBuffer<int> iout(2048);
    LT_LAUNCH(selftest_barrier_loop, 1, 1025, 0, 0, 1, iout.ptr);
    expect_refused("1025 threads", cudaErrorInvalidConfiguration, "1025 threads");
    LT_LAUNCH(selftest_barrier_loop, 1, dim3(32, 32, 2), 0, 0, 1, iout.ptr);
    expect_refused("2048 threads", cudaErrorInvalidConfiguration, "2048 threads");
    LT_LAUNCH(selftest_barrier_loop, 1, dim3(1, 1, 65), 0, 0, 1, iout.ptr);
    expect_refused("z = 65", cudaErrorInvalidConfiguration, "z <= 64");
    LT_LAUNCH(selftest_barrier_loop, dim3(0), 32, 0, 0, 1, iout.ptr);
    expect_refused("empty grid", cudaErrorInvalidConfiguration, "grid (0,1,1)");
    LT_LAUNCH(selftest_reverse_chunks, 1, 32, 49 * 1024, 0, out.ptr, out.ptr, 32);
    expect_refused("49 KiB dynamic", cudaErrorInvalidValue, "cudaFuncSetAttribute");
    // 40 KiB static + 4 KiB dynamic fits 48 KiB; + 12 KiB does not, until the kernel opts in to more.
    LT_LAUNCH(selftest_smem_hog, 1, 1024, 4 * 1024, 0, out.ptr);
    CHECK_CUDA(cudaGetLastError());
    CHECK(out.get()[5] == 1023 - 5 + 1, "smem_hog result %g", out.get()[5]);
    LT_LAUNCH(selftest_smem_hog, 1, 1024, 12 * 1024, 0, out.ptr);
    expect_refused("40 KiB static + 12 KiB dynamic", cudaErrorLaunchFailure, "over the limit of 49152");
    CHECK_CUDA(
        cudaFuncSetAttribute((const void *)selftest_smem_hog, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));
    LT_LAUNCH(selftest_smem_hog, 1, 1024, 12 * 1024, 0, out.ptr);
    CHECK_CUDA(cudaGetLastError());
    CHECK(cudaFuncSetAttribute((const void *)selftest_smem_hog, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               228 * 1024) == cudaErrorInvalidValue,
          "228 KiB accepted");
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "not recorded");
    // The largest legal block runs.
    LT_LAUNCH(selftest_barrier_loop, 2, 1024, 0, 0, 3, iout.ptr);
    CHECK_CUDA(cudaGetLastError());
    CHECK(iout.get()[2047] == 3, "1024-thread blocks: %d", iout.get()[2047]);
}

void test_runtime() {
    std::vector<float> h = random_floats(100, 3), back(100, NAN);
    float *d = nullptr;
    CHECK_CUDA(cudaMalloc((void **)&d, 100 * sizeof(float)));
    cudaStream_t s;
    cudaEvent_t e0, e1;
    CHECK_CUDA(cudaStreamCreate(&s));
    CHECK_CUDA(cudaEventCreate(&e0));
    CHECK_CUDA(cudaEventCreate(&e1));
    CHECK_CUDA(cudaEventRecord(e0, s));
    CHECK_CUDA(cudaMemcpyAsync(d, h.data(), 100 * sizeof(float), cudaMemcpyHostToDevice, s));
    CHECK_CUDA(cudaMemsetAsync(d + 50, 0, 50 * sizeof(float), s));
    CHECK_CUDA(cudaMemcpyAsync(back.data(), d, 100 * sizeof(float), cudaMemcpyDeviceToHost, s));
    CHECK_CUDA(cudaEventRecord(e1, s));
    CHECK_CUDA(cudaStreamWaitEvent(s, e1, 0));
    CHECK_CUDA(cudaStreamSynchronize(s));
    float ms = -1;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    CHECK(ms >= 0, "elapsed %g", ms);
    for (int i = 0; i < 100; i++) CHECK(back[i] == (i < 50 ? h[i] : 0.0f), "element %d", i);
    // Wrong directions and bounds are errors, as a GPU would fault on them.
    CHECK(cudaMemcpy(h.data(), d, 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "H2D into host memory");
    CHECK(strstr(lt_emu::last_message(), "cudaMemcpy"), "%s", lt_emu::last_message());
    CHECK(cudaMemcpy(back.data(), d, 101 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
          "over the end");
    CHECK(cudaMemset(h.data(), 0, 4) == cudaErrorInvalidValue, "memset of host memory");
    CHECK(cudaFree(h.data()) == cudaErrorInvalidValue, "free of host memory");
    CHECK(cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess, "last error");
    CHECK(strcmp(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument") == 0, "error string");
    CHECK_CUDA(cudaEventDestroy(e0));
    CHECK_CUDA(cudaEventDestroy(e1));
    CHECK_CUDA(cudaStreamDestroy(s));
    CHECK(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle, "double destroy");
    float *pinned = nullptr;
    CHECK_CUDA(cudaMallocHost((void **)&pinned, 16));
    CHECK_CUDA(cudaFreeHost(pinned));
    CHECK_CUDA(cudaFree(d));
    CHECK_CUDA(cudaFree(nullptr));
    cudaGetLastError();
}

// cuRAND's own device code, run by the emulator, against libtrain's CPU Philox: bit for bit.
void test_curand() {
    for (int n : {1, 33, 257}) {
        const unsigned long long seed = 0x1234abcd5678ull + n;
        DeviceBuffer<float4> out(n);
        LT_LAUNCH(selftest_curand_uniform4, blocks_for(n, 64), 64, 0, 0, seed, out.ptr, n);
        CHECK_CUDA(cudaGetLastError());
        std::vector<float4> got = out.get();
        int bad = 0;
        for (int i = 0; i < n; i++) {
            const float g[4] = {got[i].x, got[i].y, got[i].z, got[i].w};
            for (int k = 0; k < 4; k++) {
                float want = lt__philox_u01(lt__philox_word(seed, 4ull * i + k));
                bad += memcmp(&g[k], &want, sizeof want) != 0;
            }
        }
        CHECK(bad == 0, "n=%d: %d of %d uniforms differ", n, bad, 4 * n);
    }
}

// Not a pass/fail check of speed: it prints what a barrier costs, for docs/cuda-emulator.md, and checks results.
void test_switch_cost() {
    const int iters = 200, block = 256, grid = 8;
    DeviceBuffer<int> out(grid * block);
    lt_emu::Stats before = lt_emu::stats();
    auto t0 = std::chrono::steady_clock::now();
    LT_LAUNCH(selftest_barrier_loop, grid, block, 0, 0, iters, out.ptr);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK_CUDA(cudaGetLastError());
    uint64_t switches = lt_emu::stats().switches - before.switches;
    printf("%llu fiber switches (%d barriers x %d threads x %d blocks) in %.3f s: %.0f ns per switch\n",
           (unsigned long long)switches, iters, block, grid, secs, secs * 1e9 / (double)switches);
    for (int v : out.get()) CHECK(v == iters * (iters - 1) / 2, "%d", v);
}

struct Case {
    const char *name;
    void (*run)();
};
const Case kCases[] = {{"reduce", test_reduce},
                       {"transpose", test_transpose},
                       {"dynamic_smem", test_dynamic_smem},
                       {"warp_ops", test_warp_ops},
                       {"missing_barrier", test_missing_barrier},
                       {"divergent_barrier", test_divergent_barrier},
                       {"bad_shuffle_mask", test_bad_shuffle_mask},
                       {"launch_config", test_launch_config},
                       {"runtime", test_runtime},
                       {"curand", test_curand},
                       {"switch_cost", test_switch_cost}};

} // namespace

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    printf("LT_EMU_SHUFFLE seed: %llu\n", (unsigned long long)lt_emu::shuffle_seed());
    for (const Case &c : kCases) {
        if (strcmp(which, "all") != 0 && strcmp(which, c.name) != 0) continue;
        int before = g_failures;
        c.run();
        printf("%s: %s\n", c.name, g_failures == before ? "ok" : "FAILED");
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "test_cuda_emu: no case named %s\n", which);
        return 2;
    }
    return g_failures ? 1 : 0;
}
