// Compares every SIMD kernel table against the portable one on random data (all weight types,
// ragged tile shapes). Prints one line per check and exits non-zero on any mismatch.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/kernels.h"
#include "util/half.h"

using namespace ilm;
using namespace ilm::cpu;

namespace {

std::mt19937 rng(1234);

std::vector<uint8_t> random_rows(DType type, int rows, int n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(size_t(rows) * n);
  for (auto& v : values) v = normal(rng);
  std::vector<uint8_t> out(size_t(rows) * dtype_row_bytes(type, n));
  for (int r = 0; r < rows; r++) {
    const float* src = values.data() + size_t(r) * n;
    uint8_t* dst = out.data() + size_t(r) * dtype_row_bytes(type, n);
    switch (type) {
      case DType::F32: std::memcpy(dst, src, size_t(n) * 4); break;
      case DType::F16: for (int k = 0; k < n; k++) reinterpret_cast<uint16_t*>(dst)[k] = f32_to_fp16(src[k]); break;
      case DType::BF16: for (int k = 0; k < n; k++) reinterpret_cast<uint16_t*>(dst)[k] = f32_to_bf16(src[k]); break;
      case DType::Q8_0: generic_kernels().quantize_q8_0(src, reinterpret_cast<BlockQ8_0*>(dst), n); break;
    }
  }
  return out;
}

GemmTileFn pick(const KernelTable& t, DType type) { return weight_kernel(t, type).gemm; }

int check_table(const KernelTable& simd) {
  int failures = 0;
  const auto& ref = generic_kernels();
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
    for (int n : {32, 64, 96, 4096}) {
      for (int nr : {1, 2, 3, 7}) {
        for (int nt : {1, 3, 4, 9}) {
          auto W = random_rows(type, nr, n);
          // Activations: f32 rows, or Q8_0 blocks for Q8_0 weights (quantized by the reference).
          std::vector<float> xf(size_t(nt) * n);
          std::normal_distribution<float> normal(0.0f, 1.0f);
          for (auto& v : xf) v = normal(rng);
          std::vector<uint8_t> X;
          size_t ldx = size_t(n) * 4;
          if (type == DType::Q8_0) {
            ldx = dtype_row_bytes(DType::Q8_0, n);
            X.resize(ldx * nt);
            for (int t = 0; t < nt; t++) ref.quantize_q8_0(xf.data() + size_t(t) * n, reinterpret_cast<BlockQ8_0*>(X.data() + t * ldx), n);
          } else {
            X.assign(reinterpret_cast<uint8_t*>(xf.data()), reinterpret_cast<uint8_t*>(xf.data() + xf.size()));
          }
          std::vector<float> y_ref(size_t(nt) * nr), y_simd(size_t(nt) * nr);
          const size_t ldw = dtype_row_bytes(type, n);
          pick(ref, type)(W.data(), ldw, X.data(), ldx, y_ref.data(), nr, nr, nt, n);
          pick(simd, type)(W.data(), ldw, X.data(), ldx, y_simd.data(), nr, nr, nt, n);
          // Error relative to sum |w * x| in double: both tables may only differ by float rounding.
          double worst = 0;
          for (int r = 0; r < nr; r++) {
            for (int t = 0; t < nt; t++) {
              std::vector<float> wr(n), xr(n);
              Tensor wt;
              wt.type = type; wt.ne[0] = n; wt.ne[1] = nr; wt.data = W.data();
              dequantize_row(wt, r, wr.data());
              if (type == DType::Q8_0) {
                Tensor xt;
                xt.type = type; xt.ne[0] = n; xt.ne[1] = nt; xt.data = X.data();
                dequantize_row(xt, t, xr.data());
              } else {
                std::memcpy(xr.data(), xf.data() + size_t(t) * n, size_t(n) * 4);
              }
              double exact = 0, magnitude = 0;
              for (int k = 0; k < n; k++) { exact += double(wr[k]) * xr[k]; magnitude += std::fabs(double(wr[k]) * xr[k]); }
              for (float got : {y_ref[size_t(t) * nr + r], y_simd[size_t(t) * nr + r]})
                worst = std::max(worst, std::fabs(got - exact) / magnitude);
            }
          }
          if (worst > 1e-5) {
            std::printf("FAIL %s gemm %s n=%d nr=%d nt=%d rel err %.3g\n", simd.isa, dtype_name(type), n, nr, nt, worst);
            failures++;
          }
        }
      }
    }
  }
  // Activation quantization must give the same blocks (up to one step of rounding).
  std::vector<float> x(4096);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (auto& v : x) v = normal(rng);
  std::vector<BlockQ8_0> a(4096 / 32), b(4096 / 32);
  ref.quantize_q8_0(x.data(), a.data(), 4096);
  simd.quantize_q8_0(x.data(), b.data(), 4096);
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].d != b[i].d) { std::printf("FAIL %s quantize_q8_0 scale block %zu\n", simd.isa, i); failures++; break; }
    for (int k = 0; k < 32; k++)
      if (std::abs(a[i].qs[k] - b[i].qs[k]) > 1) { std::printf("FAIL %s quantize_q8_0 value\n", simd.isa); failures++; break; }
  }
  std::printf("%s: %s\n", simd.isa, failures ? "FAILED" : "ok");
  return failures;
}

}  // namespace

int main() {
  int failures = 0;
  for (const KernelTable* t : {avx2_kernels(), avx512_kernels()}) {
    if (!t) continue;
    if (t == avx2_kernels() && !__builtin_cpu_supports("avx2")) { std::printf("avx2: skipped (CPU lacks it)\n"); continue; }
    failures += check_table(*t);
  }
  std::printf("selected: %s\n", kernels().isa);
  return failures ? 1 : 0;
}
