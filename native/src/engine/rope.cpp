#include "engine/rope.h"

#include <cmath>

namespace ilm {

double rope_base_for_length(const ModelConfig& c, int length) {
  const double base = c.rope_theta;
  if (c.rope_scaling != RopeScaling::Dynamic || c.context_length <= 0 || length <= c.context_length) return base;
  const double f = c.rope_factor, d = c.head_dim;
  return base * std::pow(f * length / c.context_length - (f - 1.0), d / (d - 2.0));
}

}  // namespace ilm
