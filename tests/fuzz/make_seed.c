/* Writes the checkpoint fuzzer's seed corpus into DIR: real checkpoints of the tiny trainer of fuzz_ckpt.h, saved by
 * lt_trainer_save at step 0 and after 3 steps (about 27 KB each, generated at build time, never committed). */
#include "fuzz_ckpt.h"

#include <string.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "make_seed: %s: %s\n", what, lt_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: make_seed DIR\n"), 2;
    char shard[4096], latest[4096];
    snprintf(shard, sizeof shard, "%s.tokens.bin", argv[1]);
    snprintf(latest, sizeof latest, "%s/latest", argv[1]);
    if (fuzz_write_shard(shard) != 0) return fprintf(stderr, "make_seed: cannot write %s\n", shard), 1;
    lt_train_config c;
    fuzz_config(&c, shard);
    lt_trainer *t;
    if (lt_trainer_create(&c, &t) != LT_OK) return fail("create");
    if (lt_trainer_save(t, argv[1], 0) != LT_OK) return fail("save");
    for (int i = 0; i < 3; i++)
        if (lt_trainer_step(t, NULL) != LT_OK) return fail("step");
    if (lt_trainer_save(t, argv[1], 0) != LT_OK) return fail("save");
    lt_trainer_free(t);
    unlink(latest); /* not a checkpoint: every file in a corpus is an input */
    unlink(shard);
    printf("make_seed: wrote step-00000000.h5 and step-00000003.h5 into %s\n", argv[1]);
    return 0;
}
