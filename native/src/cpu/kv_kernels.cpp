#include "cpu/kv_kernels.h"

#include <cstring>

#include "cpu/kernels.h"
#include "util/error.h"

namespace ilm::cpu {

#if !(defined(__x86_64__) || defined(_M_X64))
const KVKernels* kv_kernels_avx2(KVType) { return nullptr; }
#endif
#if !defined(__aarch64__)
const KVKernels* kv_kernels_neon(KVType) { return nullptr; }
#endif

const KVKernels& kv_kernels(KVType type) {
  static const bool avx2 = cpu_has_avx2();
  // NEON follows the GEMM table, so INTERNLM_CPU_ISA=generic compares the whole portable path.
  static const bool neon = cpu_has_neon() && std::strncmp(kernels().isa, "neon", 4) == 0;
  const KVKernels* k = avx2 ? kv_kernels_avx2(type) : neon ? kv_kernels_neon(type) : nullptr;
  if (!k) k = kv_kernels_generic(type);
  if (!k) throw Error(std::string("no CPU kernels for the ") + kv_type_name(type) + " KV cache");
  return *k;
}

}  // namespace ilm::cpu
