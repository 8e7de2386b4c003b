#include "engine/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/host_memory.h"

namespace ilm {
namespace {

// Mirrors CpuBackend's scratch (residual, norm, qkv, q/k/v, attention, gate/up, converted
// activations) and the session's logits rows, for `chunk` tokens at once.
uint64_t workspace_bytes(const ModelConfig& c, int chunk) {
  const uint64_t hd = c.head_dim, q = uint64_t(c.n_heads) * hd, kv = uint64_t(c.n_kv_heads) * hd;
  const uint64_t per_token = 2 * uint64_t(c.dim) + std::max<uint64_t>(c.dim, q + 2 * kv) + 2 * q + 2 * kv +
                             2 * uint64_t(c.ffn_dim) + std::max(c.dim, c.ffn_dim) + c.vocab_size;
  return per_token * sizeof(float) * uint64_t(chunk);
}

std::string human(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", double(bytes) / double(1 << 30));
  else std::snprintf(buf, sizeof buf, "%.0f MiB", double(bytes) / double(1 << 20));
  return buf;
}

// "1M", "1.5M", "300K", "4096": how people say context lengths (rounded down, never up).
std::string tokens(uint64_t n) {
  if (n >= 1000000) {
    const uint64_t tenths = n / 100000;
    return std::to_string(tenths / 10) + (tenths % 10 ? "." + std::to_string(tenths % 10) : "") + "M";
  }
  if (n >= 10000) return std::to_string(n / 1000) + "K";
  return std::to_string(n);
}

}  // namespace

uint64_t kv_bytes_per_token(const ModelConfig& c, KVType type) {
  return 2 * uint64_t(c.n_layers) * uint64_t(c.n_kv_heads) * kv_row_bytes(type, c.head_dim);
}

MemoryPlan plan_memory(const Model& model, int chunk, uint64_t memory_bytes) {
  MemoryPlan p;
  p.memory_bytes = memory_bytes ? memory_bytes : host_memory_available();
  p.weights_bytes = model.file_bytes;
  p.workspace_bytes = workspace_bytes(model.config, chunk);
  // Weights read into RAM are already out of MemAvailable; mapped ones are page cache, which it
  // counts as available, so they are taken off here.
  const bool weights_counted = model.weights_in_ram && !memory_bytes;
  const uint64_t used = (weights_counted ? 0 : p.weights_bytes) + p.workspace_bytes;
  p.kv_budget_bytes = p.memory_bytes > used ? p.memory_bytes - used : 0;
  const uint64_t free_for_kv = p.kv_budget_bytes;
  for (int t = 0; t < MemoryPlan::kTypes; t++) {
    p.bytes_per_token[t] = kv_bytes_per_token(model.config, KVType(t));
    p.max_context[t] = free_for_kv / p.bytes_per_token[t];
  }
  return p;
}

MemoryPlan plan_device_memory(const Model& model, uint64_t free_bytes) {
  // A CUDA cache grows layer by layer, so the last layer's copy needs the whole new cache plus
  // that layer's old buffers: a cache of C positions can only be reached when one more layer of it
  // (C / n_layers positions) fits too. The budget B leaves that headroom for the largest cache:
  // B + B / n_layers = free - kDeviceReserveBytes. (By calculation, without it a single session
  // planned at the maximum would run out ~3 GiB short: 7B f16 on an H200 near 1.04M of 1.07M.)
  const uint64_t layers = uint64_t(std::max(model.config.n_layers, 1));
  MemoryPlan p;
  p.on_device = true;
  p.memory_bytes = free_bytes;
  p.weights_bytes = model.file_bytes;
  const uint64_t after_reserve = free_bytes - std::min(free_bytes, kDeviceReserveBytes);
  p.kv_budget_bytes = after_reserve / (layers + 1) * layers;
  p.workspace_bytes = free_bytes - p.kv_budget_bytes;  // the reserve and the growth headroom
  for (int t = 0; t < MemoryPlan::kTypes; t++) {
    p.bytes_per_token[t] = kv_bytes_per_token(model.config, KVType(t));
    p.max_context[t] = p.kv_budget_bytes / p.bytes_per_token[t];
  }
  return p;
}

std::string context_fit_error(const MemoryPlan& plan, KVType type, uint64_t context) {
  const int t = int(type);
  if (context <= plan.max_context[t]) return "";
  const uint64_t free_for_kv = plan.kv_budget_bytes;
  std::ostringstream msg;
  msg << "a " << tokens(context) << "-token context needs " << human(context * plan.bytes_per_token[t])
      << " of KV cache in " << kv_type_name(type) << "; this " << (plan.on_device ? "GPU" : "machine") << " has "
      << human(free_for_kv) << " free after the weights and workspace: ";
  // The smallest type that would fit, else the longest context this type allows.
  for (int smaller = t + 1; smaller < MemoryPlan::kTypes; smaller++)
    if (context <= plan.max_context[smaller]) {
      msg << "use " << kv_type_name(KVType(smaller)) << " or ≤ " << tokens(plan.max_context[t]) << " tokens";
      return msg.str();
    }
  msg << "use ≤ " << tokens(plan.max_context[t]) << " tokens";
  return msg.str();
}

}  // namespace ilm
