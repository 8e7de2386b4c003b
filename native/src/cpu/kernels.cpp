#include "cpu/kernels.h"

#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "quant/reference.h"
#include "util/error.h"

namespace ilm::cpu {

#if defined(__x86_64__) || defined(_M_X64)
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }
const KernelTable* avx2_kernels() { return nullptr; }
const KernelTable* avx512_kernels() { return nullptr; }
#endif

// aarch64: ASIMD is part of the base ABI; SDOT (FEAT_DotProd) is optional from ARMv8.2 and is
// reported by the kernel (HWCAP_ASIMDDP) or, on macOS, by sysctl.
#if defined(__aarch64__)
bool cpu_has_neon() {
#if defined(__linux__) && defined(HWCAP_ASIMD)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
  return true;
#endif
}

bool cpu_has_neon_dotprod() {
#if defined(__linux__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
  return cpu_has_neon() && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
  int value = 0;
  size_t size = sizeof value;
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, nullptr, 0) == 0 && value != 0;
#else
  return false;
#endif
}
#else
bool cpu_has_neon() { return false; }
bool cpu_has_neon_dotprod() { return false; }
const KernelTable* neon_kernels() { return nullptr; }
const KernelTable* neon_dotprod_kernels() { return nullptr; }
#endif

const KernelTable& kernels() {
  static const KernelTable& chosen = []() -> const KernelTable& {
    const char* env = std::getenv("INTERNLM_CPU_ISA");
    const std::string limit = env ? env : "";
    if (limit != "generic" && limit != "avx2" && cpu_has_avx512() && avx512_kernels()) return *avx512_kernels();
    if (limit != "generic" && cpu_has_avx2() && avx2_kernels()) return *avx2_kernels();
    if (limit != "generic" && limit != "neon" && cpu_has_neon_dotprod() && neon_dotprod_kernels())
      return *neon_dotprod_kernels();
    if (limit != "generic" && cpu_has_neon() && neon_kernels()) return *neon_kernels();
    return generic_kernels();
  }();
  return chosen;
}

WeightKernel weight_kernel(const KernelTable& table, DType type) {
  switch (type) {
    case DType::F32: return {table.gemm_f32, ActFormat::F32};
    case DType::F16: return {table.gemm_f16, ActFormat::F32};
    case DType::BF16: return {table.gemm_bf16, ActFormat::F32};
    case DType::Q4_0: return {table.gemm_q4_0, ActFormat::Q8_0};
    case DType::Q4_1: return {table.gemm_q4_1, ActFormat::Q8_0};
    case DType::Q5_0: return {table.gemm_q5_0, ActFormat::Q8_0};
    case DType::Q5_1: return {table.gemm_q5_1, ActFormat::Q8_0};
    case DType::Q8_0: return {table.gemm_q8_0, ActFormat::Q8_0};
    case DType::Q2_K: return {table.gemm_q2_k, ActFormat::Q8_K};
    case DType::Q3_K: return {table.gemm_q3_k, ActFormat::Q8_K};
    case DType::Q4_K: return {table.gemm_q4_k, ActFormat::Q8_K};
    case DType::Q5_K: return {table.gemm_q5_k, ActFormat::Q8_K};
    case DType::Q6_K: return {table.gemm_q6_k, ActFormat::Q8_K};
    case DType::Q8_K: break;
  }
  return {};
}

size_t act_row_bytes(ActFormat format, int n) {
  size_t bytes = 0;
  switch (format) {
    case ActFormat::F32: bytes = size_t(n) * sizeof(float); break;
    case ActFormat::Q8_0: bytes = kActPairBytes * size_t((n / 32 + 1) / 2); break;
    case ActFormat::Q8_K: bytes = kActQ8KBytes * size_t(n / 256); break;
  }
  return (bytes + 63) & ~size_t(63);
}

void quantize_activation(const KernelTable& table, ActFormat format, const float* x, uint8_t* row, int n) {
  switch (format) {
    case ActFormat::F32: std::memcpy(row, x, size_t(n) * sizeof(float)); return;
    case ActFormat::Q8_0: table.quantize_q8_0(x, row, n); return;
    case ActFormat::Q8_K: table.quantize_q8_k(x, row, n); return;
  }
}

void dequantize_row(const Tensor& t, int64_t r, float* out) {
  quant::dequantize_row(t.type, t.row(r), out, t.cols());
}

}  // namespace ilm::cpu
