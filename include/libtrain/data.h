/* libtrain data: memory-mapped token datasets, a byte-level tokenizer, and a batch loader with a resumable cursor
 * that splits the stream between data-parallel ranks. Not thread-safe per object. */
#ifndef LIBTRAIN_DATA_H
#define LIBTRAIN_DATA_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_dataset lt_dataset;

/* Opens a token dataset read-only and memory-maps it. path is one shard file or a directory whose *.bin files
 * (sorted by name) are concatenated. Each shard is either llm.c's format (a 256 x int32 header: magic 20240520,
 * version 1, token count; then uint16 tokens) or, without that magic, nanoGPT's raw uint16 tokens.
 * Every token is checked to be < vocab_size. Errors: LT_ERR_IO (missing or unreadable, or a *.bin that is not a
 * regular file), LT_ERR_FORMAT (wrong version, a count that disagrees with the file size, an odd-sized raw file, an
 * empty shard, a token >= vocab_size: the message names the file and the position). A shard truncated by another
 * process while mapped ends this one with SIGBUS: keep shards immutable while training. lt_dataset_free(NULL) is a
 * no-op. */
LT_API lt_status lt_dataset_open(const char *path, int64_t vocab_size, lt_dataset **out);
LT_API void lt_dataset_free(lt_dataset *ds);
/* Total tokens. */
LT_API int64_t lt_dataset_tokens(const lt_dataset *ds);
/* A dataset over tokens [start, end) of ds (sharing its mapping; ds must outlive it), for train/validation splits.
 * LT_ERR_RANGE when the range is outside ds. */
LT_API lt_status lt_dataset_slice(lt_dataset *ds, int64_t start, int64_t end, lt_dataset **out);

/* Byte-level tokenizer (vocab 256): writes every byte of the text as one token into an llm.c shard at shard_path
 * (written to a temporary name, fsynced and renamed, so a failure leaves no partial shard). text_path is a text
 * file, or a directory whose text files (regular files, not links, with no NUL byte in their first 4 KiB; hidden
 * files skipped) are concatenated in name order. LT_ERR_IO when unreadable, LT_ERR_FORMAT when there is no text or
 * more than 2^31 - 1 bytes. */
LT_API lt_status lt_tokenize_bytes(const char *text_path, const char *shard_path);

typedef struct lt_loader lt_loader;

/* The cursor: which epoch and which global batch within it come next. Saving it saves the loader's position. */
typedef struct lt_loader_state {
    uint64_t seed;
    uint64_t epoch;
    uint64_t batch;
} lt_loader_state;

/* Batches of B windows of T+1 consecutive tokens (inputs and next-token targets), windows taken at multiples of
 * T and shuffled per epoch by a permutation drawn from (seed, epoch). Global batch i of an epoch gives rank r the
 * windows i*world*B + r*B ... + B-1 of the permutation, so the ranks' parts are disjoint and their union is
 * what one rank with world*B rows would read. LT_ERR_ARG for B, T < 1, rank outside [0, world); LT_ERR_SHAPE when
 * the dataset has fewer than world*B windows. The loader borrows ds. */
LT_API lt_status lt_loader_create(lt_dataset *ds, int64_t B, int64_t T, uint64_t seed, int rank, int world,
                                  lt_loader **out);
LT_API void lt_loader_free(lt_loader *loader);
/* The next batch as i32 tensors x, y [B, T] on device (y is x shifted by one token). Advances the cursor,
 * moving to the next epoch when this one has no full batch left. */
LT_API lt_status lt_loader_next(lt_loader *loader, lt_device device, lt_tensor **x, lt_tensor **y);
LT_API lt_status lt_loader_get_state(const lt_loader *loader, lt_loader_state *state);
/* LT_ERR_ARG when state->seed differs from the loader's seed; LT_ERR_RANGE when state->batch is not a batch of
 * this loader's epochs (the state came from another B, T, world size or dataset). */
LT_API lt_status lt_loader_set_state(lt_loader *loader, const lt_loader_state *state);
/* Full batches per epoch. */
LT_API int64_t lt_loader_batches_per_epoch(const lt_loader *loader);

#ifdef __cplusplus
}
#endif

#endif
