// Finding usable CUDA devices. The runtime is linked statically and loads the driver (libcuda)
// only on the first call, so on a machine without a driver these calls fail cleanly and the
// engine keeps running on the CPU.
#include <cmath>
#include <cstdio>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_util.h"

namespace ilm::cuda {

std::string format_gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", gib(bytes));
  return buf;
}

void memory_info(size_t* free_bytes, size_t* total_bytes) {
  check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

namespace {

std::string why_no_devices(cudaError_t status) {
  switch (status) {
    case cudaErrorNoDevice: return "no CUDA GPU found";
    case cudaErrorInsufficientDriver: {
      int runtime = 0;
      cudaRuntimeGetVersion(&runtime);
      return "no NVIDIA driver, or one too old for CUDA " + std::to_string(runtime / 1000) + "." +
             std::to_string(runtime % 1000 / 10) + " (update the driver)";
    }
    default: return std::string("the CUDA driver failed to start: ") + cudaGetErrorString(status);
  }
}

}  // namespace

std::vector<DeviceInfo> list_devices(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    cudaGetLastError();
    if (reason) *reason = why_no_devices(status == cudaSuccess ? cudaErrorNoDevice : status);
    return {};
  }
  std::vector<DeviceInfo> out;
  std::string skipped;
  for (int i = 0; i < count; i++) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    DeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.total_bytes = prop.totalGlobalMem;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.sm_count = prop.multiProcessorCount;
    if (d.cc_major < 8) {
      skipped += (skipped.empty() ? "" : "; ") + std::string("GPU ") + std::to_string(i) + " (" + d.name +
                 ") has compute capability " + std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor) +
                 ", this build needs 8.0 or newer";
      continue;
    }
    size_t free_bytes = 0, total = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) {
      d.free_bytes = free_bytes;
    } else {
      cudaGetLastError();
      skipped += (skipped.empty() ? "" : "; ") + std::string("GPU ") + std::to_string(i) + " (" + d.name +
                 ") could not be opened";
      continue;
    }
    out.push_back(std::move(d));
  }
  if (out.empty() && reason) *reason = skipped.empty() ? "no usable CUDA GPU" : skipped;
  return out;
}

std::string describe(const DeviceInfo& d) {
  return "cuda:" + std::to_string(d.index) + " (" + d.name + ", " +
         std::to_string(int(std::lround(gib(d.total_bytes)))) + " GiB)";
}

}  // namespace ilm::cuda
