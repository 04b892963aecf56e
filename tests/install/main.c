/* An installed libtrain used from C11 through pkg-config (`pkg-config --cflags --libs libtrain`):
 * y = x @ w^T + b with w read transposed, checked against a naive product. */
#include <libtrain/libtrain.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failed(lt_status st, const char *what) {
    if (st == LT_OK) return 0;
    fprintf(stderr, "install_pkg_config: %s failed with %s: %s\n", what, lt_status_name(st), lt_last_error());
    return 1;
}

int main(void) {
    if (strcmp(lt_version(), LT_EXPECTED_VERSION) != 0) {
        fprintf(stderr, "install_pkg_config: lt_version() is %s, pkg-config says %s\n", lt_version(),
                LT_EXPECTED_VERSION);
        return 1;
    }
    const float x[2 * 2] = {1.5f, -0.25f, 0.75f, 2.0f};                 /* 2x2 */
    const float w[3 * 2] = {0.5f, -1.5f, 2.25f, 0.125f, -0.75f, 1.25f}; /* 3x2, used as w^T */
    const float b[3] = {-0.5f, 0.25f, 1.125f};                          /* broadcast over rows */
    const int64_t xs[] = {2, 2}, ws[] = {3, 2}, bs[] = {3};
    lt_tensor *tx = NULL, *tw = NULL, *tb = NULL, *xw = NULL, *y = NULL;
    float got[2 * 3];
    for (int i = 0; i < 6; i++) got[i] = NAN;
    int bad = failed(lt_tensor_from_host(x, xs, 2, LT_F32, LT_DEVICE_CPU, &tx), "lt_tensor_from_host") ||
              failed(lt_tensor_from_host(w, ws, 2, LT_F32, LT_DEVICE_CPU, &tw), "lt_tensor_from_host") ||
              failed(lt_tensor_from_host(b, bs, 1, LT_F32, LT_DEVICE_CPU, &tb), "lt_tensor_from_host") ||
              failed(lt_matmul(tx, tw, false, true, &xw), "lt_matmul") || failed(lt_add(xw, tb, &y), "lt_add") ||
              failed(lt_tensor_to_host(y, got, sizeof got), "lt_tensor_to_host");
    for (int i = 0; i < 2 && !bad; i++) {
        for (int j = 0; j < 3 && !bad; j++) {
            double want = b[j] + (double)x[i * 2] * w[j * 2] + (double)x[i * 2 + 1] * w[j * 2 + 1];
            if (!(fabs(got[i * 3 + j] - want) <= 1e-5 * (1 + fabs(want)))) {
                fprintf(stderr, "install_pkg_config: y[%d][%d] is %g, expected %g\n", i, j, got[i * 3 + j], want);
                bad = 1;
            }
        }
    }
    lt_tensor_release(y);
    lt_tensor_release(xw);
    lt_tensor_release(tb);
    lt_tensor_release(tw);
    lt_tensor_release(tx);
    if (!bad) printf("install_pkg_config: libtrain %s: x @ w^T + b as expected\n", lt_version());
    return bad;
}
