/* Checkpoint reader against bad files: truncated, bit-flipped, wrong dtype, wrong dims, missing and extra datasets,
 * absurd dims, an overlong string, a filter, a bad latest, not HDF5 at all. Each must fail with a clear status that
 * names the function and the tensor, leave the trainer unchanged, and never crash (also run under ASan). */
#include "test.h"

#include <hdf5.h>
#include <sys/stat.h>

static const char *g_dir;
static char g_shard[4096], g_good[4096];

static void tiny(lt_train_config *c) {
    lt_train_config_init(c, sizeof *c);
    c->data_path = g_shard;
    c->model.block_size = 16;
    c->model.n_layer = 2;
    c->model.n_head = 2;
    c->model.n_embd = 32;
    c->model.dropout = 0.1;
    c->seq_len = 16;
    c->batch_size = 4;
    c->steps = 10;
    c->eval_batches = 0;
    c->progress = LT_PROGRESS_NONE;
}

static lt_trainer *new_trainer(void) {
    lt_train_config c;
    tiny(&c);
    lt_trainer *t = NULL;
    if (lt_trainer_create(&c, &t) != LT_OK) fprintf(stderr, "create: %s\n", lt_last_error());
    return t;
}

static void copy_file(const char *from, const char *to, long limit) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    long total = 0;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (limit >= 0 && total + (long)n > limit) n = (size_t)(limit - total);
        fwrite(buf, 1, n, b);
        total += (long)n;
        if (limit >= 0 && total >= limit) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

static char *case_path(const char *name) {
    static char p[4096];
    snprintf(p, sizeof p, "%s/%s.h5", g_dir, name);
    copy_file(g_good, p, -1);
    return p;
}

/* Replaces dataset `path` by one of type ftype and dims (written with data when not NULL, with a correct crc32). */
static void replace(const char *file, const char *path, hid_t ftype, hid_t mtype, int nd, const hsize_t *dims,
                    const void *data, size_t bytes, bool chunked) {
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    if (H5Lexists(f, path, H5P_DEFAULT) > 0) H5Ldelete(f, path, H5P_DEFAULT);
    hsize_t maxd[8];
    for (int i = 0; i < nd; i++) maxd[i] = chunked ? H5S_UNLIMITED : dims[i];
    hid_t sp = H5Screate_simple(nd, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        hsize_t ch[8];
        for (int i = 0; i < nd; i++) ch[i] = 4;
        H5Pset_chunk(dcpl, nd, ch);
    }
    hid_t d = H5Dcreate2(f, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (data) H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    /* zlib's CRC-32, as the writer stores it */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; data && i < bytes; i++) {
        crc ^= ((const unsigned char *)data)[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    crc ^= 0xFFFFFFFFu;
    hid_t as = H5Screate(H5S_SCALAR), a = H5Acreate2(d, "crc32", H5T_STD_U32LE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT32, &crc);
    H5Aclose(a), H5Sclose(as), H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp), H5Fclose(f);
}

/* The case fails with status st, the message names lt_trainer_resume and `what`, and the trainer is unchanged. */
static void expect_fail(const char *file, lt_ckpt_mode mode, lt_status st, const char *what) {
    lt_trainer *t = new_trainer();
    CHECK(t != NULL);
    if (!t) return;
    lt_tensor *flat;
    lt_params_flat(lt_gpt_params(lt_trainer_model(t)), &flat, NULL);
    double *before = tt_values(flat);
    CHECK_ERR(lt_trainer_resume(t, file, mode), st, "lt_trainer_resume");
    if (!strstr(lt_last_error(), what)) {
        fprintf(stderr, "message \"%s\" does not mention \"%s\"\n", lt_last_error(), what);
        tt_failed_checks++;
    }
    double *after = tt_values(flat);
    CHECK(memcmp(before, after, sizeof(double) * (size_t)lt_tensor_numel(flat)) == 0);
    CHECK(lt_trainer_steps_done(t) == 0);
    free(before), free(after);
    lt_trainer_free(t);
}

static void test_good_file(void) {
    lt_ckpt_info info = {.struct_size = sizeof info};
    CHECK_OK(lt_ckpt_validate(g_good, NULL, &info));
    CHECK(info.version == 1 && info.step == 3 && info.world_size == 1 && info.n_params == 2 + 2 * 12 + 2);
    CHECK(strcmp(info.dtype, "f32") == 0);
    lt_trainer *t = new_trainer();
    CHECK_OK(lt_ckpt_validate(g_good, t, NULL));
    CHECK_OK(lt_trainer_resume(t, g_good, LT_CKPT_STRICT));
    CHECK(lt_trainer_steps_done(t) == 3);
    CHECK_OK(lt_trainer_step(t, NULL));
    lt_trainer_free(t);
}

static void test_truncated(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/truncated.h5", g_dir);
    struct stat sb;
    stat(g_good, &sb);
    copy_file(g_good, p, (long)sb.st_size / 2);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "truncated");
    CHECK_ERR(lt_ckpt_validate(p, NULL, NULL), LT_ERR_FORMAT, "lt_ckpt_validate");
    copy_file(g_good, p, 1000); /* the superblock survives, the rest does not */
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "truncated.h5");
}

static void test_bit_flip(void) {
    char *p = case_path("bitflip");
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "params/h.0.attn.c_attn.weight", H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d), H5Fclose(f);
    FILE *fp = fopen(p, "r+b");
    fseek(fp, (long)off + 101, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)off + 101, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "CRC mismatch in /params/h.0.attn.c_attn.weight");
    CHECK_ERR(lt_ckpt_validate(p, NULL, NULL), LT_ERR_FORMAT, "lt_ckpt_validate");
}

static void test_wrong_dtype(void) {
    char *p = case_path("dtype");
    double v[16 * 32];
    for (int i = 0; i < 16 * 32; i++) v[i] = 0.01 * i;
    replace(p, "params/wpe.weight", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, (hsize_t[]){16, 32}, v, sizeof v, false);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_DTYPE, "/params/wpe.weight");
    expect_fail(p, LT_CKPT_PARAMS_ONLY, LT_ERR_DTYPE, "/params/wpe.weight");
    CHECK_ERR(lt_ckpt_validate(p, NULL, NULL), LT_ERR_DTYPE, "lt_ckpt_validate");
}

static void test_wrong_dims(void) {
    char *p = case_path("dims");
    float v[33] = {0};
    replace(p, "params/ln_f.bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, (hsize_t[]){33}, v, sizeof v, false);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_SHAPE, "/params/ln_f.bias in");
    expect_fail(p, LT_CKPT_PARAMS_ONLY, LT_ERR_SHAPE, "the model's is 32");
}

static void test_missing(void) {
    char *p = case_path("missing");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "optim/h.1.mlp.c_fc.bias/v", H5P_DEFAULT);
    H5Fclose(f);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "/optim/h.1.mlp.c_fc.bias/v is missing");
    /* Fine-tuning needs only /params: the same file loads, with a fresh optimizer and step count. */
    lt_trainer *t = new_trainer();
    CHECK_OK(lt_trainer_resume(t, p, LT_CKPT_PARAMS_ONLY));
    CHECK(lt_trainer_steps_done(t) == 0);
    lt_trainer_free(t);
    p = case_path("missing_param");
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "params/h.0.ln_2.weight", H5P_DEFAULT);
    H5Fclose(f);
    expect_fail(p, LT_CKPT_PARAMS_ONLY, LT_ERR_FORMAT, "/params/h.0.ln_2.weight is missing");
}

static void test_extra(void) {
    char *p = case_path("extra");
    float v[4] = {1, 2, 3, 4};
    replace(p, "params/h.9.mystery", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, (hsize_t[]){4}, v, sizeof v, false);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "extra member /params/h.9.mystery");
}

static void test_absurd(void) {
    char *p = case_path("absurd");
    replace(p, "params/wte.weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, (hsize_t[]){(hsize_t)1 << 50, 32}, NULL, 0,
            true);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "absurd dims");
    CHECK_ERR(lt_ckpt_validate(p, NULL, NULL), LT_ERR_FORMAT, "lt_ckpt_validate");
    /* An overlong string attribute is refused before it is read. */
    p = case_path("longstring");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "model_config");
    hid_t ty = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(ty, 1 << 20);
    char *big = calloc(1, 1 << 20);
    memset(big, 'x', (1 << 20) - 1);
    hid_t a = H5Acreate2(f, "model_config", ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, ty, big);
    H5Aclose(a), H5Sclose(sp), H5Tclose(ty), H5Fclose(f);
    free(big);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "model_config of / is 1048576 bytes long");
}

static void test_filtered(void) {
    char *p = case_path("filtered");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "params/ln_f.weight", H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, (hsize_t[]){32}, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, (hsize_t[]){8});
    H5Pset_shuffle(dcpl);
    float v[32] = {0};
    hid_t d = H5Dcreate2(f, "params/ln_f.weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp), H5Fclose(f);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "filters");
}

static void test_not_hdf5(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/text.h5", g_dir);
    FILE *f = fopen(p, "w");
    fputs("this is not an HDF5 file, just some text\n", f);
    fclose(f);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "is not an HDF5 file");
    snprintf(p, sizeof p, "%s/empty.h5", g_dir);
    fclose(fopen(p, "w"));
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "is not an HDF5 file");
    expect_fail("/nonexistent/ckpt.h5", LT_CKPT_STRICT, LT_ERR_IO, "/nonexistent/ckpt.h5");
    /* A latest that points outside its directory is refused. */
    snprintf(p, sizeof p, "%s/evil", g_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/evil/latest", g_dir);
    f = fopen(p, "w");
    fputs("../good/step-00000003.h5\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/evil", g_dir);
    expect_fail(p, LT_CKPT_STRICT, LT_ERR_FORMAT, "does not hold a checkpoint file name");
}

static void test_strict_mismatch(void) {
    lt_train_config c;
    tiny(&c);
    c.beta2 = 0.99;
    lt_trainer *t;
    CHECK_OK(lt_trainer_create(&c, &t));
    CHECK_ERR(lt_trainer_resume(t, g_good, LT_CKPT_STRICT), LT_ERR_ARG, "lt_trainer_resume");
    CHECK(strstr(lt_last_error(), "beta2") != NULL);
    CHECK_OK(lt_trainer_resume(t, g_good, LT_CKPT_PARAMS_ONLY));
    CHECK(lt_trainer_steps_done(t) == 0);
    lt_trainer_free(t);
    /* A model of another width: the first mismatching tensor is named. */
    tiny(&c);
    c.model.n_embd = 64;
    CHECK_OK(lt_trainer_create(&c, &t));
    CHECK_ERR(lt_trainer_resume(t, g_good, LT_CKPT_PARAMS_ONLY), LT_ERR_SHAPE, "lt_trainer_resume");
    CHECK(strstr(lt_last_error(), "/params/wte.weight") != NULL);
    lt_trainer_free(t);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_ckpt_bad TEXT WORKDIR\n");
        return 2;
    }
    g_dir = argv[2];
    mkdir(g_dir, 0755);
    snprintf(g_shard, sizeof g_shard, "%s/data.bin", g_dir);
    if (lt_tokenize_bytes(argv[1], g_shard) != LT_OK) {
        fprintf(stderr, "%s\n", lt_last_error());
        return 1;
    }
    char dir[3000];
    snprintf(dir, sizeof dir, "%.2900s/good", g_dir);
    snprintf(g_good, sizeof g_good, "%s/step-00000003.h5", dir);
    lt_trainer *t = new_trainer();
    for (int i = 0; t && i < 3; i++) lt_trainer_step(t, NULL);
    if (!t || lt_trainer_save(t, dir, 0) != LT_OK) {
        fprintf(stderr, "save: %s\n", lt_last_error());
        return 1;
    }
    lt_trainer_free(t);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the mutations below probe; their own errors are not the test */
    RUN(test_good_file);
    RUN(test_truncated);
    RUN(test_bit_flip);
    RUN(test_wrong_dtype);
    RUN(test_wrong_dims);
    RUN(test_missing);
    RUN(test_extra);
    RUN(test_absurd);
    RUN(test_filtered);
    RUN(test_not_hdf5);
    RUN(test_strict_mismatch);
    return tt_finish();
}
