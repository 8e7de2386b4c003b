// Device selection: "auto" | "cpu" | "cuda" | "cuda:N". Builds without CUDA (nvcc absent at
// build time) compile the CPU branch only; INTERNLM_WITH_CUDA comes from the CUDA block of
// native/CMakeLists.txt.
#include <cstdlib>

#include "engine/backend.h"
#include "util/error.h"

#ifdef INTERNLM_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace ilm {
namespace {

struct DeviceChoice {
  enum Kind { Auto, Cpu, Cuda } kind = Auto;
  int index = -1;  // -1: the first usable GPU
};

DeviceChoice parse_device(const std::string& device) {
  if (device.empty() || device == "auto") return {};
  if (device == "cpu") return {DeviceChoice::Cpu, -1};
  if (device == "cuda" || device == "gpu") return {DeviceChoice::Cuda, -1};
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 9) {
    char* end = nullptr;
    const long n = std::strtol(device.c_str() + 5, &end, 10);
    if (*end == '\0' && n >= 0) return {DeviceChoice::Cuda, int(n)};
  }
  throw Error("device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", not \"" + device + "\"");
}

}  // namespace

std::vector<std::string> available_backends() {
#ifdef INTERNLM_WITH_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

LoadOptions::Weights auto_weights_for(const std::string& device) {
  bool gpu = false;
  const DeviceChoice choice = parse_device(device);
  if (choice.kind == DeviceChoice::Cuda) gpu = true;
#ifdef INTERNLM_WITH_CUDA
  std::string reason;
  if (choice.kind == DeviceChoice::Auto) gpu = !cuda::list_devices(&reason).empty();
#endif
  return gpu ? LoadOptions::Weights::Mapped : LoadOptions::Weights::RamIfFits;
}

std::unique_ptr<Backend> create_backend(const Model& model, const std::string& device, int threads,
                                        std::string* chosen_description) {
  const DeviceChoice choice = parse_device(device);
  std::string chosen;
  auto cpu = [&](const std::string& why) {
    chosen = why.empty() ? "cpu" : "cpu (" + why + ")";
    return create_cpu_backend(model, threads);
  };
  std::unique_ptr<Backend> backend;
  if (choice.kind == DeviceChoice::Cpu) {
    backend = cpu("");
  } else {
#ifdef INTERNLM_WITH_CUDA
    std::string reason;
    const auto devices = cuda::list_devices(&reason);
    if (choice.kind == DeviceChoice::Cuda) {
      if (devices.empty()) throw Error("no usable CUDA device: " + reason);
      const cuda::DeviceInfo* d = &devices.front();
      if (choice.index >= 0) {
        d = nullptr;
        for (const auto& info : devices)
          if (info.index == choice.index) d = &info;
        if (!d)
          throw Error("CUDA device " + std::to_string(choice.index) + " is not usable (" +
                      std::to_string(devices.size()) + " usable device(s), numbered from 0)");
      }
      backend = cuda::create_cuda_backend(model, d->index, threads);
      chosen = cuda::describe(*d);
    } else if (devices.empty()) {
      backend = cpu("no CUDA device: " + reason);
    } else {
      // auto: the first GPU the model fits on; the CPU (with the reason) when none works.
      std::string why;
      for (const auto& d : devices) {
        try {
          backend = cuda::create_cuda_backend(model, d.index, threads);
          chosen = cuda::describe(d);
          break;
        } catch (const Error& e) {
          why += (why.empty() ? "" : "; ") + cuda::describe(d) + ": " + e.what();
        }
      }
      if (!backend) backend = cpu("CUDA not used: " + why);
    }
#else
    if (choice.kind == DeviceChoice::Cuda)
      throw Error("this build of the engine has no CUDA backend (nvcc was not found when it was built); "
                  "use device \"cpu\" or \"auto\"");
    backend = cpu("this build has no CUDA backend");
#endif
  }
  if (chosen_description) *chosen_description = chosen;
  return backend;
}

}  // namespace ilm
