/* Times saving and resuming a GPT-2 124M trainer's checkpoint (parameters and AdamW moments) against a raw fwrite
 * and fread of the same number of bytes, each followed by fsync, and prints the file size and the ratios.
 * Usage: checkpoint [--dir DIR] [--data SHARD_OR_TEXT] [--layers N] [--embd N] [--heads N] */
#include <libtrain/libtrain.h>

#include "bench.h"

#include "../examples/options.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Writes n bytes of buf to path with fwrite, then fsync; returns seconds, or -1 on an I/O error. */
static double raw_write(const char *path, const void *buf, size_t n) {
    double t0 = bench_now();
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    bool ok = fwrite(buf, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    return ok ? bench_now() - t0 : -1;
}

static double raw_read(const char *path, void *buf, size_t n) {
    double t0 = bench_now();
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    bool ok = fread(buf, 1, n, f) == n;
    fclose(f);
    return ok ? bench_now() - t0 : -1;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/libtrain_ckpt_bench", *data = "data/fortunes.bytes.bin";
    int64_t layers = 12, embd = 768, heads = 12;
    const opt table[] = {
        {"--dir", OPT_STRING, &dir, 0, 0, "where the checkpoint and the raw file are written (removed after)"},
        {"--data", OPT_STRING, &data, 0, 0, "a token shard (train_gpt makes data/fortunes.bytes.bin)"},
        {"--layers", OPT_INT, &layers, 1, 96, "Transformer blocks"},
        {"--embd", OPT_INT, &embd, 8, 8192, "model width"},
        {"--heads", OPT_INT, &heads, 1, 128, "attention heads"},
    };
    int rc = opt_parse(argc, argv, "Times checkpoint save and resume against raw fwrite/fread of the same bytes.",
                       table, (int)(sizeof table / sizeof table[0]));
    if (rc) return rc == 1 ? 0 : rc;
    lt_train_config c;
    lt_train_config_init(&c, sizeof c);
    c.data_path = data;
    c.model.vocab_size = 50257;
    c.model.padded_vocab_size = 50304;
    c.model.block_size = 1024;
    c.model.n_layer = layers;
    c.model.n_head = heads;
    c.model.n_embd = embd;
    c.seq_len = 64;
    c.batch_size = 1;
    c.steps = 1;
    c.eval_batches = 0;
    c.progress = LT_PROGRESS_NONE;
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK || lt_trainer_step(t, NULL) != LT_OK) {
        fprintf(stderr, "checkpoint: %s\n", lt_last_error());
        return 1;
    }
    int64_t n = lt_params_numel(lt_gpt_params(lt_trainer_model(t)));
    size_t bytes = (size_t)n * 4 * 3; /* parameters, m and v in f32 */
    mkdir(dir, 0755);
    double t_save = bench_now();
    lt_status st = lt_trainer_save(t, dir, 1);
    t_save = bench_now() - t_save;
    double t_load = bench_now();
    if (st == LT_OK) st = lt_trainer_resume(t, dir, LT_CKPT_STRICT);
    t_load = bench_now() - t_load;
    if (st != LT_OK) {
        fprintf(stderr, "checkpoint: %s\n", lt_last_error());
        return 1;
    }
    char path[4096], raw[4096], cmd[4200];
    FILE *latest;
    snprintf(path, sizeof path, "%s/latest", dir);
    latest = fopen(path, "r");
    char name[256] = "";
    if (!latest || !fgets(name, sizeof name, latest)) return 1;
    fclose(latest);
    name[strcspn(name, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    stat(path, &sb);
    snprintf(raw, sizeof raw, "%s/raw.bin", dir);
    char *buf = malloc(bytes);
    if (!buf) return 1;
    memset(buf, 1, bytes);
    double w = raw_write(raw, buf, bytes), r = raw_read(raw, buf, bytes);
    printf("| model | parameters | file MB | save s | resume s | raw fwrite+fsync s | raw fread s | save / raw | "
           "resume / raw |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    printf("| %lldx%lld | %lld | %.1f | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx |\n", (long long)layers,
           (long long)embd, (long long)n, (double)sb.st_size / 1e6, t_save, t_load, w, r, t_save / w, t_load / r);
    free(buf);
    lt_trainer_free(t);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
