/* libFuzzer target for the checkpoint reader (src/ckpt/ckpt_read.c): each input is written to a file, then validated
 * alone (lt_ckpt_validate) and loaded into a tiny trainer (lt_trainer_resume, STRICT, then PARAMS_ONLY if refused).
 * Any status is fine; a crash, a sanitizer report, a leak, a hang, a message that does not name the function, or a
 * failed load that changed the trainer is a bug. Writes only its own two files in $LT_FUZZ_TMPDIR, /dev/shm or /tmp. */
#include "fuzz_ckpt.h"
#include "h5_fixup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lt_trainer *trainer;
static char input[256];

static void cleanup(void) { lt_trainer_free(trainer); }

static void die(const char *what) {
    fprintf(stderr, "fuzz_ckpt: %s: %s\n", what, lt_last_error());
    abort();
}

/* Files go to $LT_FUZZ_TMPDIR (tools/fuzz.sh makes one and removes it), else to tmpfs when there is one. The shard is
 * unlinked once the trainer has mapped it, and each input once it has been read, so a run leaves nothing behind but
 * the input it crashed on (which libFuzzer saves anyway). */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *base = getenv("LT_FUZZ_TMPDIR");
    if (!base || !*base || strlen(base) > 200) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char shard[256];
    snprintf(shard, sizeof shard, "%s/lt-fuzz-ckpt-XXXXXX", base);
    int fd = mkstemp(shard);
    if (fd < 0) die("mkstemp");
    close(fd);
    if (fuzz_write_shard(shard) != 0) die("writing the token shard");
    lt_train_config c;
    fuzz_config(&c, shard);
    if (lt_trainer_create(&c, &trainer) != LT_OK) die("lt_trainer_create");
    unlink(shard);
    snprintf(input, sizeof input, "%s/lt-fuzz-ckpt-%ld.h5", base, (long)getpid());
    atexit(cleanup);
    return 0;
}

/* The trainer's observable state: step count and every parameter byte (a few KB). */
typedef struct snapshot {
    int64_t step;
    size_t n;
    unsigned char bytes[1 << 16];
} snapshot;

static void take(snapshot *s) {
    lt_tensor *flat;
    if (lt_params_flat(lt_gpt_params(lt_trainer_model(trainer)), &flat, NULL) != LT_OK) die("lt_params_flat");
    s->step = lt_trainer_steps_done(trainer);
    s->n = (size_t)lt_tensor_numel(flat) * lt_dtype_size(lt_tensor_dtype(flat));
    if (s->n > sizeof s->bytes) die("the fuzz model grew too large for its snapshot");
    memcpy(s->bytes, lt_tensor_data(flat), s->n);
}

/* A failure must name the function in its message and, for a load, leave the trainer as it was. */
static void check(lt_status st, const char *fn, const snapshot *before) {
    if (st == LT_OK) return;
    const char *msg = lt_last_error();
    if (strncmp(msg, fn, strlen(fn)) != 0) {
        fprintf(stderr, "fuzz_ckpt: %s failed with %s but its message does not name it: '%s'\n", fn, lt_status_name(st),
                msg);
        abort();
    }
    if (!before) return;
    static snapshot after;
    take(&after);
    if (after.step != before->step || after.n != before->n || memcmp(after.bytes, before->bytes, after.n) != 0) {
        fprintf(stderr, "fuzz_ckpt: %s failed (%s: %s) but changed the trainer\n", fn, lt_status_name(st), msg);
        abort();
    }
}

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* libFuzzer's own mutations, then (3 times in 4) the metadata checksums recomputed: libhdf5 checksums every object
 * header, B-tree and heap of these files, so most raw mutations would only ever test its checksum check. With the
 * fix-up, a mutated attribute, dataspace, type or layout message reaches the reader's own checks. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 4 != 0) h5fix_all(data, size);
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(input, "wb");
    if (!f) die("cannot write the input file");
    if (size > 0 && fwrite(data, 1, size, f) != size) die("cannot write the input file");
    if (fclose(f) != 0) die("cannot write the input file");

    /* Each read costs a few ms of libhdf5's metadata work, so only the distinct paths: the structure alone (names
     * from the file), the STRICT load (lt_ckpt_validate against a trainer runs the same checks without the commit),
     * and the params-only load when STRICT refused the file. */
    lt_ckpt_info info = {.struct_size = sizeof info};
    check(lt_ckpt_validate(input, NULL, &info), "lt_ckpt_validate", NULL);
    static snapshot before;
    take(&before);
    lt_status st = lt_trainer_resume(trainer, input, LT_CKPT_STRICT);
    check(st, "lt_trainer_resume", &before);
    if (st != LT_OK) check(lt_trainer_resume(trainer, input, LT_CKPT_PARAMS_ONLY), "lt_trainer_resume", &before);
    unlink(input);
    return 0;
}
