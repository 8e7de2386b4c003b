// The quantized GEMMs of kquant_neon_impl.h on SDOT (vdotq_s32, ARMv8.2 dotprod). This is the only
// file compiled with -march=armv8.2-a+dotprod (native/CMakeLists.txt); kernels() calls into it
// only when the CPU reports the extension (cpu_has_neon_dotprod()).
#if !defined(__ARM_FEATURE_DOTPROD)
#error "kquant_neon_dotprod.cpp needs -march=armv8.2-a+dotprod (see native/CMakeLists.txt)"
#endif

#define ILM_NEON_DOTPROD 1
#include "cpu/kquant_neon_impl.h"

namespace ilm::cpu {

void add_quant_kernels_neon_dotprod(KernelTable& t) {
  add_quant_kernels_neon(t);  // the activation quantizers (baseline code)
  set_neon_gemms(t);
}

}  // namespace ilm::cpu
