#pragma once
// The CUDA backend's entry points, used by engine/backend_factory.cpp (only in builds with CUDA).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace ilm::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
};

// The usable devices (compute capability 8.0 or newer). Empty when there is none; then *reason
// says why (no driver, no device, too old, ...).
std::vector<DeviceInfo> list_devices(std::string* reason);

// "cuda:0 (NVIDIA H200, 139 GiB)"
std::string describe(const DeviceInfo& device);

// Device memory the model's weights and working buffers need (not counting KV caches).
// Throws ilm::Error naming the reason when the model cannot run on the CUDA backend at all.
size_t required_bytes(const Model& model);

// Uploads the weights to `device` once; throws ilm::Error with a clear message when they do not fit.
std::unique_ptr<Backend> create_cuda_backend(const Model& model, int device, int threads);

// Benchmarks only (tools/cuda_kv_bench): fills positions [0, n) of a cache of this CUDA backend
// with random valid entries, reserving them first, so that decode can be timed at a long context
// without prefilling it (a step's cost depends on the context length, not on the values).
void bench_fill_cache(KVCache& cache, Backend& backend, int n, uint32_t seed);

}  // namespace ilm::cuda
