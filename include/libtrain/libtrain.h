/* libtrain: tensors, autograd and Transformer training in C. Include this one header. */
#ifndef LIBTRAIN_H
#define LIBTRAIN_H

#include "ckpt.h"
#include "core.h"
#include "data.h"
#include "dist.h"
#include "nn.h"
#include "ops.h"
#include "optim.h"
#include "params.h"
#include "tensor.h"
#include "train.h"

#endif
