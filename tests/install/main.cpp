// An installed libtrain used from C++17, as a user would: y = a @ b + c, checked against a naive product.
// It also checks that the library's version is the one the CMake package announced.
#include <libtrain/libtrain.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

namespace {

struct release_tensor {
    void operator()(lt_tensor *t) const { lt_tensor_release(t); }
};
using tensor = std::unique_ptr<lt_tensor, release_tensor>;

bool ok(lt_status st, const char *what) {
    if (st == LT_OK) return true;
    std::fprintf(stderr, "install_test: %s failed with %s: %s\n", what, lt_status_name(st), lt_last_error());
    return false;
}

tensor from_host(const std::vector<float> &v, std::initializer_list<int64_t> shape) {
    lt_tensor *t = nullptr;
    ok(lt_tensor_from_host(v.data(), shape.begin(), static_cast<int>(shape.size()), LT_F32, LT_DEVICE_CPU, &t),
       "lt_tensor_from_host");
    return tensor(t);
}

} // namespace

int main() {
    if (std::strcmp(lt_version(), LT_EXPECTED_VERSION) != 0) {
        std::fprintf(stderr, "install_test: lt_version() is %s, the package says %s\n", lt_version(),
                     LT_EXPECTED_VERSION);
        return 1;
    }
    const std::vector<float> a = {0.5f, -1.25f, 2.0f, 3.0f, 0.75f, -0.5f}; // 2x3
    const std::vector<float> b = {1.5f, -2.0f, 0.25f, 1.75f, -1.0f, 0.5f}; // 3x2
    const std::vector<float> c = {0.125f, -0.375f};                        // 2, broadcast over rows
    tensor ta = from_host(a, {2, 3}), tb = from_host(b, {3, 2}), tc = from_host(c, {2});
    if (!ta || !tb || !tc) return 1;

    lt_tensor *ab = nullptr, *y = nullptr;
    if (!ok(lt_matmul(ta.get(), tb.get(), false, false, &ab), "lt_matmul")) return 1;
    tensor tab(ab);
    if (!ok(lt_add(tab.get(), tc.get(), &y), "lt_add")) return 1;
    tensor ty(y);
    if (lt_tensor_ndim(ty.get()) != 2 || lt_tensor_dim(ty.get(), 0) != 2 || lt_tensor_dim(ty.get(), 1) != 2) {
        std::fprintf(stderr, "install_test: y has the wrong shape\n");
        return 1;
    }
    std::vector<float> got(4, NAN);
    if (!ok(lt_tensor_to_host(ty.get(), got.data(), got.size() * sizeof(float)), "lt_tensor_to_host")) return 1;

    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            double want = c[j];
            for (int k = 0; k < 3; k++) want += static_cast<double>(a[i * 3 + k]) * b[k * 2 + j];
            if (!(std::fabs(got[i * 2 + j] - want) <= 1e-5 * (1 + std::fabs(want)))) {
                std::fprintf(stderr, "install_test: y[%d][%d] is %g, expected %g\n", i, j, got[i * 2 + j], want);
                return 1;
            }
        }
    }
    std::printf("install_test: libtrain %s (ABI %d): a @ b + c = [%g %g; %g %g], as expected\n", lt_version(),
                lt_abi_version(), got[0], got[1], got[2], got[3]);
    return 0;
}
