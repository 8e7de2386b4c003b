#pragma once
// How long a context fits in host RAM for each KV cache type (CPU backend): the mapped weights
// count as resident, plus one chunk's forward workspace, and the rest is KV cache.
#include <cstdint>
#include <string>

#include "engine/kv_type.h"
#include "model/model.h"

namespace ilm {

struct MemoryPlan {
  uint64_t memory_bytes = 0;     // free host RAM (MemAvailable), or the GPU's free memory
  uint64_t weights_bytes = 0;    // the weight files, mapped and counted as resident
  // Host RAM: activations of one chunk of `chunk` tokens, logits included. GPU: what is kept free
  // (staging buffers, graphs) plus the headroom a KV cache needs to grow (plan_device_memory).
  uint64_t workspace_bytes = 0;
  uint64_t kv_budget_bytes = 0;  // what is left for KV caches
  bool on_device = false;        // a GPU's memory (plan_device_memory), not host RAM
  static constexpr int kTypes = 4;
  uint64_t bytes_per_token[kTypes] = {};  // indexed by KVType
  uint64_t max_context[kTypes] = {};
};

// K and V of every layer for one position: 2 × layers × kv_heads × (head_dim × element bytes,
// plus an f32 scale and zero point per row for q8/q4).
uint64_t kv_bytes_per_token(const ModelConfig& c, KVType type);

// memory_bytes: the RAM to plan for (0 reads MemAvailable from /proc/meminfo).
MemoryPlan plan_memory(const Model& model, int chunk, uint64_t memory_bytes = 0);

// GPU memory left free beside the KV caches (staging buffers of saved-cache transfers, growth
// rounding, CUDA graphs): the plan keeps it out of the budget and a growing CUDA cache keeps it free.
constexpr uint64_t kDeviceReserveBytes = uint64_t(512) << 20;

// The plan for a GPU whose weights and buffers are already allocated: `free_bytes` (the device's
// free memory now) less a reserve for what sessions allocate beside their caches and the headroom
// of a cache's layer-by-layer growth (one layer of the largest cache).
MemoryPlan plan_device_memory(const Model& model, uint64_t free_bytes);

// Empty when `context` positions of `type` fit; else a message naming the numbers and the way out.
std::string context_fit_error(const MemoryPlan& plan, KVType type, uint64_t context);

}  // namespace ilm
