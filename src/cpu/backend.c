/* The CPU backend table. Entries live in one file per op family; this file only wires them together. */
#include "cpu/cpu.h"

const lt__backend lt__cpu_backend = {
    .name = "cpu",
    .allocator = lt__cpu_allocator,
    .fill = lt__cpu_fill,
    .copy = lt__cpu_copy,
    .arange = lt__cpu_arange,
    .philox = lt__cpu_philox,
    .unary = lt__cpu_unary,
    .unary_backward = lt__cpu_unary_backward,
    .binary = lt__cpu_binary,
    .scalar = lt__cpu_scalar,
    .where = lt__cpu_where,
    .reduce = lt__cpu_reduce,
    .max_backward = lt__cpu_max_backward,
    .gemm = lt__cpu_gemm,
    .softmax = lt__cpu_softmax,
    .softmax_backward = lt__cpu_softmax_backward,
    .layer_norm = lt__cpu_layer_norm,
    .layer_norm_backward = lt__cpu_layer_norm_backward,
    .cross_entropy = lt__cpu_cross_entropy,
    .cross_entropy_backward = lt__cpu_cross_entropy_backward,
    .embedding = lt__cpu_embedding,
    .embedding_backward = lt__cpu_embedding_backward,
    .dropout = lt__cpu_dropout,
    .sgd_step = lt__cpu_sgd_step,
};
