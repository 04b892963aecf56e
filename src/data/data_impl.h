/* Internal interface between the dataset and the loader. */
#ifndef LT_DATA_IMPL_H
#define LT_DATA_IMPL_H

#include "libtrain/data.h"

/* Copies tokens [pos, pos + n) of ds as int32 into dst, across shard boundaries. The caller checks the range. */
void lt__dataset_read_i32(const lt_dataset *ds, int64_t pos, int64_t n, int32_t *dst);

#endif
