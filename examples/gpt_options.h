/* The options that train_gpt and pretrain share: the argument struct and its defaults, the option table, device and
 * data preparation, and the mapping onto lt_train_config. Header-only, included by one example each. */
#ifndef LT_EXAMPLE_GPT_OPTIONS_H
#define LT_EXAMPLE_GPT_OPTIONS_H

#include <libtrain/libtrain.h>

#include "options.h"

#include <ctype.h>
#include <sys/stat.h>

#define DEFAULT_CORPUS "/usr/share/games/fortunes"
#define GPT_MAX_OPTIONS 64 /* room in a table for the shared options and a program's own */

typedef struct args {
    const char *data, *device, *cache_dir, *metrics, *prompt, *ckpt_dir, *resume;
    int64_t ckpt_every, keep_last;
    int64_t steps, batch, seq, layers, heads, embd, accum, warmup, eval_every, eval_batches, log_every, seed, threads;
    int64_t sample_tokens, top_k;
    double lr, min_lr, wd, clip, dropout, val_fraction, temperature;
    bool bf16;
} args;

/* Picks the device: "auto" is CUDA when this build has it and a GPU answers, else the CPU. */
static int parse_device(const char *prog, const char *s, lt_device *dev) {
    lt_tensor *probe = NULL;
    if (strcmp(s, "cpu") == 0) {
        *dev = LT_DEVICE_CPU;
        return 0;
    }
    if (strcmp(s, "cuda") == 0 || strncmp(s, "cuda:", 5) == 0 || strcmp(s, "auto") == 0) {
        lt_device cuda = {LT_CUDA, s[4] == ':' ? atoi(s + 5) : 0};
        if (lt_tensor_empty(NULL, 0, LT_F32, cuda, &probe) == LT_OK) {
            lt_tensor_release(probe);
            *dev = cuda;
            return 0;
        }
        if (strcmp(s, "auto") == 0) {
            *dev = LT_DEVICE_CPU;
            return 0;
        }
        fprintf(stderr, "%s: --device %s: %s\n", prog, s, lt_last_error());
        return 2;
    }
    fprintf(stderr, "%s: --device must be auto, cpu, cuda or cuda:N, not '%s'\n", prog, s);
    return 2;
}

/* A shard path for the corpus: an existing .bin file or a directory holding .bin files is used as it is; any
 * other file or directory is text, tokenized once into cache_dir (reused while the text is older than it). */
static int prepare_data(const char *prog, const char *data, const char *cache_dir, char *shard, size_t n) {
    struct stat st, sh;
    if (stat(data, &st) != 0) {
        fprintf(stderr, "%s: cannot read --data %s: %s\n", prog, data, strerror(errno));
        return 2;
    }
    size_t len = strlen(data);
    bool is_bin = S_ISREG(st.st_mode) && len > 4 && strcmp(data + len - 4, ".bin") == 0;
    if (S_ISDIR(st.st_mode)) {
        char probe[4096];
        lt_dataset *ds = NULL;
        snprintf(probe, sizeof probe, "%s", data);
        is_bin = lt_dataset_open(probe, 65536, &ds) == LT_OK; /* a directory of shards opens as a dataset */
        lt_dataset_free(ds);
    }
    if (is_bin) {
        snprintf(shard, n, "%s", data);
        return 0;
    }
    const char *base = strrchr(data, '/');
    base = base && base[1] ? base + 1 : data;
    if (mkdir(cache_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create --cache-dir %s: %s\n", prog, cache_dir, strerror(errno));
        return 2;
    }
    snprintf(shard, n, "%s/%s.bytes.bin", cache_dir, base);
    if (stat(shard, &sh) == 0 && sh.st_mtime >= st.st_mtime) return 0;
    printf("tokenizing %s into %s\n", data, shard);
    if (lt_tokenize_bytes(data, shard) != LT_OK) {
        fprintf(stderr, "%s: %s\n", prog, lt_last_error());
        return 2;
    }
    return 0;
}

/* Samples a->sample_tokens bytes after a->prompt from the trained model and prints them as text, escaping what a
 * terminal would not show. Returns the library's status (its message is in lt_last_error()). */
static lt_status print_sample(lt_trainer *trainer, args *a, uint64_t seed) {
    if (a->sample_tokens <= 0) return LT_OK;
    int n_prompt = (int)strlen(a->prompt);
    if (n_prompt == 0) a->prompt = "\n", n_prompt = 1;
    int n = n_prompt + (int)a->sample_tokens;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    if (!ids) return LT_ERR_OOM;
    for (int i = 0; i < n_prompt; i++) ids[i] = (unsigned char)a->prompt[i];
    lt_status st = lt_gpt_sample(lt_trainer_model(trainer), ids, n_prompt, (int)a->sample_tokens, a->temperature,
                                 (int)a->top_k, seed, ids);
    if (st == LT_OK) {
        printf("--- sample (temperature %.2f, top-k %d) ---\n", a->temperature, (int)a->top_k);
        for (int i = 0; i < n; i++) {
            int c = ids[i];
            if (c == '\n' || c == '\t' || (c >= 32 && c < 127))
                putchar(c);
            else
                printf("\\x%02x", c & 0xff);
        }
        putchar('\n');
    }
    free(ids);
    return st;
}

/* The defaults of every shared option, from cfg (filled by lt_train_config_init). */
static void gpt_args_init(const lt_train_config *cfg, args *a) {
    *a = (args){.data = DEFAULT_CORPUS,
                .device = "auto",
                .cache_dir = "data",
                .prompt = "\n",
                .steps = cfg->steps,
                .batch = cfg->batch_size,
                .seq = cfg->seq_len,
                .layers = cfg->model.n_layer,
                .heads = cfg->model.n_head,
                .embd = cfg->model.n_embd,
                .accum = cfg->grad_accum,
                .warmup = cfg->warmup_steps,
                .eval_every = cfg->eval_every,
                .eval_batches = cfg->eval_batches,
                .log_every = cfg->log_every,
                .seed = (int64_t)cfg->seed,
                .sample_tokens = 300,
                .top_k = 40,
                .lr = cfg->lr,
                .min_lr = cfg->min_lr,
                .wd = cfg->weight_decay,
                .clip = cfg->grad_clip,
                .val_fraction = cfg->val_fraction,
                .temperature = 0.8,
                .resume = "none",
                .keep_last = cfg->keep_last};
}

/* Writes the shared options into table (room for GPT_MAX_OPTIONS) and returns how many. */
static int gpt_options(args *a, opt *table) {
    const opt shared[] = {
        {"--data", OPT_STRING, &a->data, 0, 0, "text file, directory of text files, .bin shard or shard directory"},
        {"--cache-dir", OPT_STRING, &a->cache_dir, 0, 0, "where tokenized text shards are kept"},
        {"--device", OPT_STRING, &a->device, 0, 0, "auto, cpu, cuda or cuda:N"},
        {"--bf16", OPT_FLAG, &a->bf16, 0, 0, "bf16 autocast on a GPU: bf16 matrix products, f32 weights and loss"},
        {"--steps", OPT_INT, &a->steps, 0, 1e9, "optimizer steps"},
        {"--batch", OPT_INT, &a->batch, 1, 1e6, "sequences per micro-batch (B)"},
        {"--seq", OPT_INT, &a->seq, 1, 1e6, "tokens per sequence (T, also the model's context)"},
        {"--grad-accum", OPT_INT, &a->accum, 1, 1e6, "micro-batches per step"},
        {"--layers", OPT_INT, &a->layers, 1, 1024, "Transformer blocks"},
        {"--heads", OPT_INT, &a->heads, 1, 1024, "attention heads"},
        {"--embd", OPT_INT, &a->embd, 1, 1e5, "model width (divisible by --heads)"},
        {"--dropout", OPT_DOUBLE, &a->dropout, 0, 0.99, "dropout probability in training"},
        {"--lr", OPT_DOUBLE, &a->lr, 0, 10, "peak learning rate"},
        {"--min-lr", OPT_DOUBLE, &a->min_lr, 0, 10, "learning rate at the end of the cosine decay"},
        {"--warmup", OPT_INT, &a->warmup, 0, 1e9, "linear warm-up steps"},
        {"--weight-decay", OPT_DOUBLE, &a->wd, 0, 10, "AdamW weight decay (matrices only)"},
        {"--clip", OPT_DOUBLE, &a->clip, 0, 1e6, "clip the gradient norm to this (0: off)"},
        {"--val-fraction", OPT_DOUBLE, &a->val_fraction, 0, 0.9, "fraction of the tokens held out"},
        {"--eval-every", OPT_INT, &a->eval_every, 0, 1e9, "steps between validations (0: only at the end)"},
        {"--eval-batches", OPT_INT, &a->eval_batches, 0, 1e6, "batches per validation"},
        {"--log-every", OPT_INT, &a->log_every, 1, 1e9, "steps between progress lines"},
        {"--metrics", OPT_STRING, &a->metrics, 0, 0, "write metrics as JSON Lines to this file"},
        {"--seed", OPT_INT, &a->seed, 0, 9e15, "seed for initialisation, data order, dropout and sampling"},
        {"--threads", OPT_INT, &a->threads, 0, 1024, "CPU threads, 0 = all cores"},
        {"--sample-tokens", OPT_INT, &a->sample_tokens, 0, 1e6, "bytes to sample after training"},
        {"--prompt", OPT_STRING, &a->prompt, 0, 0, "text the sample starts from"},
        {"--temperature", OPT_DOUBLE, &a->temperature, 1e-3, 100, "sampling temperature"},
        {"--top-k", OPT_INT, &a->top_k, 0, 65536, "sample from the k likeliest bytes (0: all)"},
        {"--ckpt-dir", OPT_STRING, &a->ckpt_dir, 0, 0, "save HDF5 checkpoints here (SIGTERM/SIGUSR1: save and exit 0)"},
        {"--ckpt-every", OPT_INT, &a->ckpt_every, 0, 1e9, "steps between checkpoints (0: only at the end)"},
        {"--keep-last", OPT_INT, &a->keep_last, 0, 1e6, "checkpoints kept in --ckpt-dir (0: all)"},
        {"--resume", OPT_STRING, &a->resume, 0, 0, "auto (latest in --ckpt-dir, if any), none, or a checkpoint PATH"},
    };
    int n = (int)(sizeof shared / sizeof shared[0]);
    memcpy(table, shared, sizeof shared);
    return n;
}

/* Copies the parsed options into cfg (shard is the prepared data path, borrowed). */
static void gpt_apply(const args *a, const char *shard, lt_train_config *cfg) {
    cfg->data_path = shard;
    cfg->model.block_size = a->seq;
    cfg->model.n_layer = a->layers;
    cfg->model.n_head = a->heads;
    cfg->model.n_embd = a->embd;
    cfg->model.dropout = a->dropout;
    cfg->mixed_precision = a->bf16;
    cfg->seq_len = a->seq;
    cfg->batch_size = a->batch;
    cfg->grad_accum = a->accum;
    cfg->steps = a->steps;
    cfg->warmup_steps = a->warmup;
    cfg->lr = a->lr;
    cfg->min_lr = a->min_lr;
    cfg->weight_decay = a->wd;
    cfg->grad_clip = a->clip;
    cfg->val_fraction = a->val_fraction;
    cfg->eval_every = a->eval_every;
    cfg->eval_batches = a->eval_batches;
    cfg->log_every = a->log_every;
    cfg->metrics_path = a->metrics;
    cfg->seed = (uint64_t)a->seed;
    cfg->threads = (int)a->threads;
    cfg->ckpt_dir = a->ckpt_dir;
    cfg->ckpt_every = a->ckpt_every;
    cfg->keep_last = (int)a->keep_last;
    cfg->resume = a->resume;
}

#endif
