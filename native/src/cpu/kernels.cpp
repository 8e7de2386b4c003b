#include "cpu/kernels.h"

#include "util/error.h"
#include "util/half.h"

namespace ilm::cpu {

#if !(defined(__x86_64__) || defined(_M_X64))
const KernelTable* avx2_kernels() { return nullptr; }
#endif
const KernelTable* avx512_kernels() { return nullptr; }

const KernelTable& kernels() {
  static const KernelTable& chosen = [&]() -> const KernelTable& {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && avx2_kernels()) return *avx2_kernels();
#endif
    return generic_kernels();
  }();
  return chosen;
}

WeightKernel weight_kernel(const KernelTable& table, DType type) {
  switch (type) {
    case DType::F32: return {table.gemm_f32, ActFormat::F32};
    case DType::F16: return {table.gemm_f16, ActFormat::F32};
    case DType::BF16: return {table.gemm_bf16, ActFormat::F32};
    case DType::Q8_0: return {table.gemm_q8_0, ActFormat::Q8_0};
  }
  return {};
}

size_t act_row_bytes(ActFormat format, int n) {
  switch (format) {
    case ActFormat::F32: return size_t(n) * sizeof(float);
    case ActFormat::Q8_0: return size_t(n / kQ8_0BlockSize) * sizeof(BlockQ8_0);
  }
  return 0;
}

void dequantize_row(const Tensor& t, int64_t r, float* out) {
  const uint8_t* row = t.row(r);
  const int64_t n = t.cols();
  switch (t.type) {
    case DType::F32:
      for (int64_t k = 0; k < n; k++) out[k] = reinterpret_cast<const float*>(row)[k];
      return;
    case DType::F16:
      for (int64_t k = 0; k < n; k++) out[k] = fp16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
      return;
    case DType::BF16:
      for (int64_t k = 0; k < n; k++) out[k] = bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
      return;
    case DType::Q8_0: {
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
      for (int64_t k = 0; k < n; k++) out[k] = fp16_to_f32(blocks[k / 32].d) * float(blocks[k / 32].qs[k % 32]);
      return;
    }
  }
  throw Error(std::string("cannot dequantize tensor type ") + dtype_name(t.type));
}

}  // namespace ilm::cpu
