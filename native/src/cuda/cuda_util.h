#pragma once
// Host-side CUDA helpers: error checks that throw ilm::Error, and RAII owners for device memory,
// pinned host memory, streams and graphs. Every owner remembers its device, because engine calls
// arrive on different threads and the current device is per thread.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

#include "util/error.h"

namespace ilm::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
  }
}

inline double gib(size_t bytes) { return double(bytes) / double(1ull << 30); }
std::string format_gib(size_t bytes);

// Bytes free and total on the current device.
void memory_info(size_t* free_bytes, size_t* total_bytes);

class DeviceScope {
 public:
  explicit DeviceScope(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }
};

// Owns n elements of T in device memory (plain cudaMalloc, never managed memory).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  // `what` names the allocation in the out-of-memory message.
  DeviceArray(size_t n, int device, const std::string& what) : n_(n), device_(device) {
    if (n == 0) return;
    void* p = nullptr;
    cudaError_t status = cudaSetDevice(device);
    if (status == cudaSuccess) status = cudaMalloc(&p, n * sizeof(T));
    if (status != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      throw Error(what + " needs " + format_gib(n * sizeof(T)) + " of GPU memory; GPU " + std::to_string(device) +
                  " has " + format_gib(free_bytes) + " free (" + cudaGetErrorString(status) + ")");
    }
    p_ = static_cast<T*>(p);
  }
  ~DeviceArray() { reset(); }
  DeviceArray(DeviceArray&& o) noexcept { *this = std::move(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
      device_ = o.device_;
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

  void reset() {
    if (p_) {
      // Errors are ignored: at process exit the runtime may already be gone.
      cudaSetDevice(device_);
      cudaFree(p_);
      p_ = nullptr;
      n_ = 0;
    }
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
  int device_ = 0;
};

// Page-locked host memory: the only host memory asynchronous copies overlap with.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) : bytes_(bytes) {
    check(cudaMallocHost(&p_, bytes), "cudaMallocHost (pinned staging memory)");
  }
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFreeHost(p_);
      p_ = std::exchange(o.p_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  template <typename T = void>
  T* get() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream() = default;
  explicit Stream(int device) : device_(device) {
    check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~Stream() {
    if (s_) {
      cudaSetDevice(device_);
      cudaStreamDestroy(s_);
    }
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { check(cudaStreamSynchronize(s_), "cudaStreamSynchronize (a kernel failed)"); }

 private:
  cudaStream_t s_ = nullptr;
  int device_ = 0;
};

class Event {
 public:
  Event() { check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreate"); }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// An instantiated graph (the captured decode step of one KV cache).
class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() { reset(); }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  bool ready() const { return exec_ != nullptr; }
  cudaGraphExec_t get() const { return exec_; }
  void adopt(cudaGraphExec_t exec) {
    reset();
    exec_ = exec;
  }
  void reset() {
    if (exec_) {
      cudaGraphExecDestroy(exec_);
      exec_ = nullptr;
    }
  }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace ilm::cuda
