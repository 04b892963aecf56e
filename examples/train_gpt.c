/* The main job: trains a small byte-level GPT on a text corpus with the libtrain C API, showing progress and
 * validation loss, then prints a sample. Defaults to the fortune-cookie database of Debian's `fortunes` package.
 * Uses only the public API: lt_tokenize_bytes to make a shard, lt_trainer for the loop, lt_gpt_sample at the end. */
#include "gpt_options.h"

int main(int argc, char **argv) {
    lt_train_config cfg;
    lt_train_config_init(&cfg, sizeof cfg);
    args a;
    gpt_args_init(&cfg, &a);
    opt table[GPT_MAX_OPTIONS];
    int n_opts = gpt_options(&a, table);
    int rc =
        opt_parse(argc, argv, "Trains a small byte-level GPT on a text corpus, then samples from it.", table, n_opts);
    if (rc) return rc == 1 ? 0 : rc;

    char shard[4096];
    if ((rc = parse_device("train_gpt", a.device, &cfg.device)) ||
        (rc = prepare_data("train_gpt", a.data, a.cache_dir, shard, sizeof shard)))
        return rc;
    gpt_apply(&a, shard, &cfg);
    if (strcmp(a.resume, "auto") == 0 && !a.ckpt_dir) {
        fprintf(stderr, "train_gpt: --resume auto needs --ckpt-dir\n");
        return 2;
    }

    lt_trainer *trainer = NULL;
    int status = 1;
    if (lt_trainer_create(&cfg, &trainer) != LT_OK) goto fail;
    printf("train_gpt: %lld parameters, %d layers, %d heads, width %d, context %d, on %s (libtrain %s)\n",
           (long long)lt_params_numel(lt_gpt_params(lt_trainer_model(trainer))), (int)a.layers, (int)a.heads,
           (int)a.embd, (int)a.seq, cfg.device.type == LT_CUDA ? "cuda" : "cpu", lt_version());
    if (lt_trainer_steps_done(trainer) > 0)
        printf("train_gpt: resumed at step %lld\n", (long long)lt_trainer_steps_done(trainer));
    if (lt_trainer_run(trainer) != LT_OK) goto fail;
    if (lt_trainer_steps_done(trainer) < cfg.steps) { /* stopped by a signal, after saving: exit 0, no sample */
        lt_trainer_free(trainer);
        return 0;
    }
    if (print_sample(trainer, &a, cfg.seed) != LT_OK) goto fail;
    status = 0;
fail:
    if (status) fprintf(stderr, "train_gpt: %s\n", lt_last_error());
    lt_trainer_free(trainer);
    return status;
}
