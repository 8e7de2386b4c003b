#pragma once
// Device helpers shared by the kernels: conversions, warp reductions, and thin wrappers over the
// PTX instructions the matrix kernels use (ldmatrix, mma.sync, cp.async). sm_80 or newer.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "cuda/kernels.h"
#include "util/error.h"

namespace ilm::cuda {

// After each launch. With INTERNLM_CUDA_SYNC=1 every kernel is also waited for, so a fault is
// reported with the name of the kernel that caused it (the backend then runs without graphs).
inline void check_kernel(const char* name) {
  static const bool sync_each = [] {
    const char* v = std::getenv("INTERNLM_CUDA_SYNC");
    return v && *v && *v != '0';
  }();
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw Error(std::string("CUDA kernel ") + name + " failed to launch: " + cudaGetErrorString(status));
  if (sync_each && (status = cudaDeviceSynchronize()) != cudaSuccess)
    throw Error(std::string("CUDA kernel ") + name + " failed: " + cudaGetErrorString(status));
}

__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits16) { return __uint_as_float(bits16 << 16); }

__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// Weights are read exactly once per step: keep them out of L1 so activations stay there.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Eight consecutive weights of a row as floats, from 16 bytes (two loads for F32).
template <WType T>
struct Weights8;

template <>
struct Weights8<WType::F16> {
  static constexpr int kLoads = 1;
  __device__ __forceinline__ static void load(const void* row, int k, uint4 (&raw)[1]) {
    raw[0] = load_stream(static_cast<const uint16_t*>(row) + k);
  }
  __device__ __forceinline__ static void unpack(const uint4 (&raw)[1], float (&w)[8]) {
    const uint32_t u[4] = {raw[0].x, raw[0].y, raw[0].z, raw[0].w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&u[i]));
      w[2 * i] = f.x;
      w[2 * i + 1] = f.y;
    }
  }
};

template <>
struct Weights8<WType::BF16> {
  static constexpr int kLoads = 1;
  __device__ __forceinline__ static void load(const void* row, int k, uint4 (&raw)[1]) {
    raw[0] = load_stream(static_cast<const uint16_t*>(row) + k);
  }
  __device__ __forceinline__ static void unpack(const uint4 (&raw)[1], float (&w)[8]) {
    const uint32_t u[4] = {raw[0].x, raw[0].y, raw[0].z, raw[0].w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      w[2 * i] = __uint_as_float(u[i] << 16);
      w[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  }
};

template <>
struct Weights8<WType::F32> {
  static constexpr int kLoads = 2;
  __device__ __forceinline__ static void load(const void* row, int k, uint4 (&raw)[2]) {
    raw[0] = load_stream(static_cast<const float*>(row) + k);
    raw[1] = load_stream(static_cast<const float*>(row) + k + 4);
  }
  __device__ __forceinline__ static void unpack(const uint4 (&raw)[2], float (&w)[8]) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
      w[4 * i] = __uint_as_float(raw[i].x);
      w[4 * i + 1] = __uint_as_float(raw[i].y);
      w[4 * i + 2] = __uint_as_float(raw[i].z);
      w[4 * i + 3] = __uint_as_float(raw[i].w);
    }
  }
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// D += A(16x16 f16, row) * B(16x8 f16, col), f32 accumulators.
__device__ __forceinline__ void mma_f16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A(16x32 s8, row) * B(32x8 s8, col), exact s32 sums.
__device__ __forceinline__ void mma_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  d[0] = d[1] = d[2] = d[3] = 0;
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 16-byte asynchronous global -> shared copy; src_bytes 0 fills the destination with zeros.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

}  // namespace ilm::cuda
