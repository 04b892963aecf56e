/* The CPU Philox against cuRAND's own device code, compiled host-only from curand_kernel.h (shared/FACTS.md):
 * lt_tensor_rand / lt_tensor_randn bit for bit against curand_uniform4 / curand_normal4 after
 * curand_init(seed, 0, offset), and src/core/philox.h's raw words against curand(). Exits 77 (CTest: skipped) when
 * the build found curand_kernel.h but could not compile it host-only (LT_TEST_NO_CURAND). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "test.h"
}

#ifdef LT_TEST_NO_CURAND

int main() {
    printf("SKIP: curand_kernel.h does not compile host-only here\n");
    return 77;
}

#else

#include "core/philox.h"

#include <curand_kernel.h>

#include <vector>

namespace {

const uint64_t SEEDS[] = {0, 1234, 0xDEADBEEFCAFEBABEull, (1ull << 32) + 7};
/* Offsets on and off a 4-word block boundary, and one whose block counter needs its high 32-bit word. */
const uint64_t OFFSETS[] = {0, 1, 2, 3, 4, 5, 7, 8, 1000, 1001, 1002, (1ull << 36) + 3};

uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* n draws of curand_uniform4 (normal == false) or curand_normal4 from curand_init(seed, 0, offset), flattened;
 * `skip` earlier draws of 4 are made and dropped first. */
std::vector<float> curand_draws(uint64_t seed, uint64_t offset, int64_t skip4, int64_t n, bool normal) {
    curandStatePhilox4_32_10_t s;
    curand_init(seed, 0, offset, &s);
    for (int64_t i = 0; i < skip4; i++) normal ? (void)curand_normal4(&s) : (void)curand_uniform4(&s);
    std::vector<float> out;
    while ((int64_t)out.size() < n) {
        float4 v = normal ? curand_normal4(&s) : curand_uniform4(&s);
        out.insert(out.end(), {v.x, v.y, v.z, v.w});
    }
    out.resize((size_t)n);
    return out;
}

/* Compares a tensor's f32 contents with cuRAND's, bit for bit; prints the first difference. */
bool same_bits(const char *what, uint64_t seed, uint64_t offset, const lt_tensor *t, const std::vector<float> &want) {
    const float *got = (const float *)lt_tensor_data(t);
    int64_t n = lt_tensor_numel(t), bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (bits(got[i]) != bits(want[(size_t)i])) {
            bad++;
            if (first < 0) first = i;
        }
    static int printed = 0; /* a systematic difference would print hundreds of lines; the first few say it all */
    if (bad && printed++ < 6)
        fprintf(stderr,
                "%s seed %llu offset %llu: %lld of %lld differ; first [%lld] %.9g (0x%08x), cuRAND %.9g (0x%08x)\n",
                what, (unsigned long long)seed, (unsigned long long)offset, (long long)bad, (long long)n,
                (long long)first, got[first], bits(got[first]), want[(size_t)first], bits(want[(size_t)first]));
    return bad == 0;
}

void test_raw_words() {
    for (uint64_t seed : SEEDS)
        for (uint64_t offset : OFFSETS) {
            curandStatePhilox4_32_10_t s;
            curand_init(seed, 0, offset, &s);
            int bad = 0;
            for (uint64_t i = 0; i < 64; i++) {
                uint32_t want = curand(&s), got = lt__philox_word(seed, offset + i);
                if (got != want && bad++ == 0)
                    fprintf(stderr, "word %llu of seed %llu: 0x%08x, cuRAND 0x%08x\n", (unsigned long long)(offset + i),
                            (unsigned long long)seed, got, want);
            }
            CHECK(bad == 0);
        }
    /* whole blocks: curand4 from a block boundary is lt__philox_block of that counter */
    for (uint64_t seed : SEEDS) {
        curandStatePhilox4_32_10_t s;
        curand_init(seed, 0, 4 * 1000, &s);
        for (uint64_t k = 1000; k < 1016; k++) {
            uint4 want = curand4(&s);
            lt__u32x4 got = lt__philox_block(seed, k);
            CHECK(got.v[0] == want.x && got.v[1] == want.y && got.v[2] == want.z && got.v[3] == want.w);
        }
    }
    /* the (0, 1] mapping of a word is curand_uniform's */
    curandStatePhilox4_32_10_t s;
    curand_init(99, 0, 0, &s);
    for (uint64_t i = 0; i < 16; i++) CHECK(bits(lt__philox_u01(lt__philox_word(99, i))) == bits(curand_uniform(&s)));
}

void test_uniform_matches_curand() {
    const int64_t shape[2] = {7, 143}; /* 1001 elements: not a multiple of 4 */
    for (uint64_t seed : SEEDS)
        for (uint64_t offset : OFFSETS) {
            lt_philox rng = {seed, offset};
            lt_tensor *t = NULL, *d = NULL;
            CHECK_OK(lt_tensor_rand(shape, 2, LT_F32, LT_DEVICE_CPU, &rng, &t));
            std::vector<float> want = curand_draws(seed, offset, 0, 1001, false);
            CHECK(same_bits("rand", seed, offset, t, want));
            CHECK(rng.offset == offset + 1004);
            /* f64 holds the same f32 numbers */
            lt_philox rng2 = {seed, offset};
            CHECK_OK(lt_tensor_rand(shape, 2, LT_F64, LT_DEVICE_CPU, &rng2, &d));
            const double *dv = (const double *)lt_tensor_data(d);
            bool ok = true;
            for (int64_t i = 0; i < 1001; i++) ok &= dv[i] == (double)want[(size_t)i];
            CHECK(ok);
        }
}

/* The host path of cuRAND's Box-Muller calls logf, sqrtf, sinf and cosf exactly as src/core/philox.h does, so the
 * results are expected to agree bit for bit (they do where the pairing of words agrees). */
void test_normal_matches_curand() {
    const int64_t shape[2] = {13, 77}; /* 1001 elements */
    for (uint64_t seed : SEEDS)
        for (uint64_t offset : OFFSETS) {
            lt_philox rng = {seed, offset};
            lt_tensor *t = NULL;
            CHECK_OK(lt_tensor_randn(shape, 2, LT_F32, LT_DEVICE_CPU, &rng, &t));
            CHECK(same_bits("randn", seed, offset, t, curand_draws(seed, offset, 0, 1001, true)));
            CHECK(rng.offset == offset + 1004);
        }
}

/* Drawing twice from one lt_philox continues cuRAND's stream: after ceil(n / 4) draws of 4, cuRAND stands where
 * rng->offset now points. */
void test_stream_continues() {
    for (int normal = 0; normal < 2; normal++)
        for (uint64_t offset : {(uint64_t)0, (uint64_t)6}) {
            lt_philox rng = {555, offset};
            const int64_t n1 = 10, n2 = 7;
            lt_tensor *a = NULL, *b = NULL;
            lt_status (*draw)(const int64_t *, int, lt_dtype, lt_device, lt_philox *, lt_tensor **) =
                normal ? lt_tensor_randn : lt_tensor_rand;
            CHECK_OK(draw(&n1, 1, LT_F32, LT_DEVICE_CPU, &rng, &a));
            CHECK_OK(draw(&n2, 1, LT_F32, LT_DEVICE_CPU, &rng, &b));
            CHECK(
                same_bits(normal ? "randn 1st" : "rand 1st", 555, offset, a, curand_draws(555, offset, 0, n1, normal)));
            CHECK(
                same_bits(normal ? "randn 2nd" : "rand 2nd", 555, offset, b, curand_draws(555, offset, 3, n2, normal)));
        }
}

} // namespace

int main() {
    RUN(test_raw_words);
    RUN(test_uniform_matches_curand);
    RUN(test_normal_matches_curand);
    RUN(test_stream_continues);
    return tt_finish();
}

#endif
