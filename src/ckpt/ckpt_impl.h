/* Shared by the checkpoint writer and reader (src/ckpt/): the HDF5 session guard, error translation, CRC-32 and the
 * trainer's flat buffers on the host. Only compiled with HDF5 (LT_HAVE_HDF5); nothing outside src/ckpt/ uses it. */
#ifndef LT_CKPT_IMPL_H
#define LT_CKPT_IMPL_H

#include "libtrain/ckpt.h"

#include <hdf5.h>

#define LT__CKPT_FORMAT "libtrain-checkpoint"
#define LT__CKPT_VERSION 1
#define LT__CKPT_MAX_STR 65536    /* longest string attribute a reader accepts, in bytes */
#define LT__CKPT_MAX_NAME 255     /* longest parameter name (as lt_params_add) */
#define LT__CKPT_MAX_LINKS 100000 /* most members of one group a reader walks */
#define LT__CKPT_MAX_WORLD 65536

/* Which function and file an HDF5 failure belongs to. */
typedef struct lt__h5_ctx {
    const char *fn;
    const char *path;
} lt__h5_ctx;

typedef struct lt__h5_session {
    H5E_auto2_t old_func;
    void *old_data;
    unsigned old_plugins;
} lt__h5_session;

void lt__h5_enter(lt__h5_session *s);
void lt__h5_leave(lt__h5_session *s);
/* Sets "fn: what failed on path (HDF5: api: message; innermost message)" from the error stack, clears it. */
lt_status lt__h5_err(lt_status st, const lt__h5_ctx *c, const char *what);

uint32_t lt__crc32(const void *data, size_t n);
/* The model config as the JSON object stored in the root attribute model_config. */
void lt__model_json(const lt_trainer *t, char *buf, size_t n);

/* The trainer's flat parameters, AdamW m and v on the host: buf[0..2], numel elements of dtype each. */
typedef struct lt__flat {
    void *buf[3];
    lt_dtype dtype;
    size_t esz;
    int64_t numel;
    bool owned[3]; /* malloc'd copies (a GPU trainer's); otherwise they alias the trainer's or the caller's buffers */
} lt__flat;
/* moments: NULL for the optimizer's own m and v, or the full m and v (numel elements each, owned by the caller)
 * gathered from a ZeRO-1 trainer's shards (lt__ckpt_gather_moments). */
lt_status lt__flat_host(const char *fn, lt_trainer *t, void *const *moments, lt__flat *f);
void lt__flat_free(lt__flat *f);
int64_t lt__param_offset(lt_trainer *t, int i, lt_tensor **param, const char **name);

/* One rank's own state: its row of /data (the loader cursor) and of /rng/dropout (its Philox stream). Plain data
 * parallelism makes everything else identical on every rank, so this is all a rank other than 0 contributes. */
typedef struct lt__rank_row {
    uint64_t cursor[3]; /* seed, epoch, batch */
    uint64_t rng[2];    /* seed, offset */
} lt__rank_row;

/* Under MPI (t->world > 1), makes every rank return the same result: the ranks all-reduce which is the first that
 * failed, and that rank's status and message (tagged with its rank) are broadcast to all. Collective; every rank
 * must call it the same number of times. With one process it returns st as it is. */
lt_status lt__ckpt_agree(lt_trainer *t, lt_status st);
/* Rank 0's nbytes at buf on every rank, in pieces that fit MPI's int counts. Collective (t->world > 1). */
lt_status lt__ckpt_bcast(lt_trainer *t, void *buf, size_t nbytes);

/* ZeRO-1 (t->cfg.zero_stage 1): each rank's optimizer holds the moments of its shard of the flat buffer only. The
 * file is the same as at stage 0: at save the shards are gathered into the full m and v at rank 0, at resume rank 0's
 * full m and v are scattered back into the shards (lt_dist_gather_shards, lt_dist_scatter_shards). */
bool lt__ckpt_sharded(const lt_trainer *t);

/* While rank 0 reads or writes a checkpoint the other ranks wait for it in a collective: the deadline of
 * lt_dist_set_timeout grows by one second per LT__CKPT_IO_BYTES_PER_S of the checkpoint's tensors for that time, so a
 * large model's file I/O is not taken for a hung rank. lt__ckpt_deadline_begin returns the deadline, which
 * lt__ckpt_deadline_end restores, returning st with its message. */
#define LT__CKPT_IO_BYTES_PER_S ((double)(16 << 20))
double lt__ckpt_deadline_begin(lt_trainer *t);
lt_status lt__ckpt_deadline_end(lt_trainer *t, double saved, lt_status st);

#endif
