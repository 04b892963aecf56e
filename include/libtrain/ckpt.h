/* libtrain checkpoints: a trainer's whole state (parameters, AdamW moments, RNG, data cursor, schedule) in one HDF5
 * file that h5py and h5dump read (layout: docs/checkpoint-format.md). Saves are atomic; loads trust no file.
 * Needs a build with HDF5 (-DLT_HDF5=ON, Debian's libhdf5-dev); without it every call is LT_ERR_UNSUPPORTED. */
#ifndef LIBTRAIN_CKPT_H
#define LIBTRAIN_CKPT_H

#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How much of a checkpoint lt_trainer_resume restores. Append-only. */
typedef enum lt_ckpt_mode {
    /* Everything: parameters, optimizer moments and step, dropout RNG, data cursor, step count. The checkpoint must
     * match the trainer exactly: model config and dtype, batch, seq_len, grad_accum, seed, optimizer and schedule
     * hyperparameters (the total step count may differ, to extend a run), and hold no dataset the model lacks. */
    LT_CKPT_STRICT = 0,
    /* Fine-tuning: only /params, which must match the model's names, dtypes and shapes; the optimizer, RNG, cursor
     * and step count stay fresh. Other groups are ignored (but still validated for structure). */
    LT_CKPT_PARAMS_ONLY = 1
} lt_ckpt_mode;

/* What a checkpoint file says about itself, filled by lt_ckpt_validate. */
typedef struct lt_ckpt_info {
    size_t struct_size;  /* sizeof(lt_ckpt_info), set by the caller */
    int version;         /* format version, 1 */
    int64_t step;        /* optimizer steps taken when it was saved */
    int64_t tokens_seen; /* training tokens consumed (all ranks) */
    int world_size;      /* data-parallel ranks of the run that wrote it (rows of /data and /rng) */
    int zero_stage;      /* 0 or 1: how the saving run held AdamW's moments (1: sharded over the ranks, ZeRO-1);
                          * the file holds them whole either way, so it resumes at either stage */
    int n_params;        /* datasets under /params */
    int64_t numel;       /* elements over all of them */
    char dtype[8];       /* "f32" or "f64" */
} lt_ckpt_info;

/* Saves t's whole state as dir/step-XXXXXXXX.h5 (8-digit step) and points dir/latest at it. The file is written
 * under a temporary name in dir, fsynced, renamed into place, and dir is fsynced; latest is replaced the same way,
 * so a crash at any point leaves the previous checkpoint and a latest naming a complete file. Afterwards all but the
 * keep_last newest step-*.h5 files are deleted (keep_last <= 0 keeps all); stale temporaries of killed saves are
 * removed first. dir is created when missing (one level). One writer per directory. Errors: LT_ERR_IO (file system,
 * with errno's text and the path), LT_ERR_BACKEND (an HDF5 call, named with HDF5's message), LT_ERR_UNSUPPORTED
 * without HDF5. Nothing is committed on failure.
 * With a data-parallel trainer (config dist, more than one rank) it is collective: every rank calls it at the same
 * step with the same arguments. Rank 0 alone touches dir (it need not be shared) and writes the parameters and
 * optimizer state, which every rank holds identically; each rank's data cursor and dropout stream are gathered to it
 * and stored as that rank's row. Rank 0 commits (rename, latest) only after every rank has reported success of its
 * part, and every rank returns the same status and message (naming the rank where it failed). */
LT_API lt_status lt_trainer_save(lt_trainer *t, const char *dir, int keep_last);

/* Restores t from a checkpoint file, or from the file a directory's latest names. Everything is validated before
 * the trainer is touched (format and version, each dataset's type, rank, dims and storage, string lengths, every
 * CRC32), so on failure t is unchanged. Errors: LT_ERR_IO (no such file, no latest in the directory),
 * LT_ERR_FORMAT (not a libtrain checkpoint, a bad or corrupt dataset, a missing or extra dataset: the message names
 * the file and the first offending tensor), LT_ERR_SHAPE (a tensor whose dims differ from the model's, named),
 * LT_ERR_DTYPE (a tensor of another type), LT_ERR_ARG (a STRICT mismatch of a hyperparameter, named),
 * LT_ERR_UNSUPPORTED without HDF5, or for a STRICT resume of a checkpoint saved with another world size (the message
 * names both; PARAMS_ONLY loads it on any number of ranks).
 * With a data-parallel trainer it is collective: rank 0 alone reads and validates the file (only it needs to see the
 * path), then the state goes to every rank, each takes its own cursor and dropout stream, and every rank returns the
 * same status; on failure no trainer is changed.
 * The checks catch damaged files (truncation, flipped bits, wrong or missing datasets), not hostile ones: a file
 * crafted with valid HDF5 checksums can still crash libhdf5 itself (docs/checkpoint-format.md, "Limits"). */
LT_API lt_status lt_trainer_resume(lt_trainer *t, const char *path_or_dir, lt_ckpt_mode mode);

/* Opens a checkpoint read-only and validates it without changing anything: the structure always, every CRC32, and,
 * when against is not NULL, the STRICT match with that trainer (world size included). info may be NULL. path may be a
 * directory (its latest is used). Never collective. Errors as lt_trainer_resume. */
LT_API lt_status lt_ckpt_validate(const char *path, const lt_trainer *against, lt_ckpt_info *info);

#ifdef __cplusplus
}
#endif

#endif
