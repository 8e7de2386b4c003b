#include "cpu/kv_kernels.h"

#include "cpu/kernels.h"
#include "util/error.h"

namespace ilm::cpu {

const KVKernels& kv_kernels(KVType type) {
  static const bool avx2 = cpu_has_avx2();
  const KVKernels* k = avx2 ? kv_kernels_avx2(type) : nullptr;
  if (!k) k = kv_kernels_generic(type);
  if (!k) throw Error(std::string("no CPU kernels for the ") + kv_type_name(type) + " KV cache");
  return *k;
}

}  // namespace ilm::cpu
