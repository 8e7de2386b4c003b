#pragma once
#include "model/model.h"

namespace ilm {

// The RoPE base for a context of `length` tokens (REFERENCE.md "Dynamic NTK"):
// base' = base * ((f * L / M) - (f - 1)) ^ (d / (d - 2)) when L > M and scaling is dynamic.
double rope_base_for_length(const ModelConfig& config, int length);

}  // namespace ilm
