// Checks every kernel table this CPU can run (generic, AVX2, AVX-512, NEON, NEON dotprod) against
// an exact double reference: the dot products of ggml's dequantization of the weights
// (quant/reference.cpp) with the dequantized activations, for every weight type and ragged tile
// shapes. Also checks that each table quantizes activations exactly as the generic one does, that
// the reference quantizers reconstruct random data as well as their bit widths allow, and the
// KV-cache row kernels (f16, q8, q4) of each instruction set. One line per failure, a summary per
// table; exits non-zero on any failure. On aarch64 it also runs under qemu-user
// (test/engine/neon.test.mjs).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/kv_kernels.h"
#include "quant/reference.h"
#include "util/half.h"

using namespace ilm;
using namespace ilm::cpu;

namespace {

std::mt19937 rng(1234);

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                              DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> normals(size_t n, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

std::vector<uint8_t> quantized_rows(DType type, const std::vector<float>& values, int rows, int n) {
  const size_t rb = dtype_row_bytes(type, n);
  std::vector<uint8_t> out(size_t(rows) * rb);
  for (int r = 0; r < rows; r++) quant::quantize_row(type, values.data() + size_t(r) * n, out.data() + r * rb, n);
  return out;
}

// The activation row's values as the kernels see them.
std::vector<double> activation_values(ActFormat format, const uint8_t* row, const float* x, int n) {
  std::vector<double> v(n);
  for (int k = 0; k < n; k++) {
    if (format == ActFormat::Q8_0) {
      const ActPair a = act_pair(row, k / 32);
      v[k] = double(a.d((k / 32) % 2)[0]) * (int(a.xu((k / 32) % 2)[k % 32]) - 128);
    } else if (format == ActFormat::Q8_K) {
      const ActQ8K a = act_q8_k(row, k / 256);
      v[k] = double(a.d()) * a.q()[k % 256];
    } else {
      v[k] = x[k];
    }
  }
  return v;
}

// Q4_1/Q5_1 minimums multiply llama.cpp's Q8_1 block sum s, which is d * sum(q) rounded to fp16:
// the exact value of what the kernels compute differs from w . x by m * (s - d * sum(q)) per block.
double min_term_correction(DType type, const uint8_t* w, const uint8_t* x, int n) {
  const size_t block = dtype_block_bytes(type);
  double correction = 0;
  for (int b = 0; b < n / 32; b++) {
    const ActPair a = act_pair(x, b);
    uint16_t m;
    std::memcpy(&m, w + b * block + 2, 2);  // Q4_1/Q5_1: d, then m
    double sum = 0;
    for (int k = 0; k < 32; k++) sum += double(a.d(b % 2)[0]) * (int(a.xu(b % 2)[k]) - 128);
    correction += double(fp16_to_f32(m)) * (8.0 * a.s(b % 2)[0] - sum);
  }
  return correction;
}

int check_gemm(const KernelTable& table) {
  int failures = 0;
  double worst_all = 0;
  for (DType type : kWeightTypes) {
    const int block = dtype_block_size(type);
    const WeightKernel wk = weight_kernel(table, type);
    if (!wk.gemm) {
      std::printf("FAIL %s has no kernel for %s\n", table.isa, dtype_name(type));
      failures++;
      continue;
    }
    for (int n : {32, 64, 96, 256, 512, 1280, 4096}) {
      if (n % block != 0) continue;
      for (int nr : {1, 3, 7, 16}) {
        // One weight matrix per shape for all activation counts: the reference quantizers are the
        // slow part under emulation (qemu-aarch64, test/engine/neon.test.mjs).
        const auto wf = normals(size_t(nr) * n, 1.0f);
        const auto W = quantized_rows(type, wf, nr, n);
        for (int nt : {1, 3, 4, 9, 17}) {
          const auto xf = normals(size_t(nt) * n, 2.0f);
          const size_t ldx = act_row_bytes(wk.act, n);
          std::vector<uint8_t> X(ldx * nt + 64);
          for (int t = 0; t < nt; t++) quantize_activation(generic_kernels(), wk.act, xf.data() + size_t(t) * n, X.data() + t * ldx, n);
          std::vector<float> Y(size_t(nt) * nr);
          const size_t ldw = dtype_row_bytes(type, n);
          wk.gemm(W.data(), ldw, X.data(), ldx, Y.data(), nr, nr, nt, n);
          // Error relative to sum |w x| in double: only float rounding may differ.
          double worst = 0;
          std::vector<float> wr(n);
          std::vector<std::vector<double>> xs;
          for (int t = 0; t < nt; t++) xs.push_back(activation_values(wk.act, X.data() + t * ldx, xf.data() + size_t(t) * n, n));
          for (int r = 0; r < nr; r++) {
            quant::dequantize_row(type, W.data() + r * ldw, wr.data(), n);
            for (int t = 0; t < nt; t++) {
              const auto& xr = xs[t];
              double exact = 0, magnitude = 0;
              for (int k = 0; k < n; k++) exact += wr[k] * xr[k], magnitude += std::fabs(wr[k] * xr[k]);
              if (type == DType::Q4_1 || type == DType::Q5_1) exact += min_term_correction(type, W.data() + r * ldw, X.data() + t * ldx, n);
              worst = std::max(worst, std::fabs(Y[size_t(t) * nr + r] - exact) / magnitude);
            }
          }
          worst_all = std::max(worst_all, worst);
          if (!(worst <= 2e-6)) {
            std::printf("FAIL %s gemm %s n=%d nr=%d nt=%d rel err %.3g\n", table.isa, dtype_name(type), n, nr, nt, worst);
            failures++;
          }
        }
      }
    }
  }
  std::printf("%s: gemm, %d types, worst error %.2g of sum |w x|\n", table.isa, int(std::size(kWeightTypes)), worst_all);
  return failures;
}

// Every table must quantize activations bit for bit as the generic one (kernels are compared on the
// generic quantizer's output; the forward pass uses the table's own).
int check_activation_quantizers(const KernelTable& table) {
  int failures = 0;
  for (ActFormat format : {ActFormat::Q8_0, ActFormat::Q8_K}) {
    for (int n : {256, 4096}) {
      auto x = normals(size_t(n), 3.0f);
      x[5] = 0.5f * (x[5] > 0 ? 1 : -1);  // a tie in the rounding, and a zero block
      std::fill(x.begin(), x.begin() + (n > 256 ? 256 : 32), 0.0f);
      const size_t bytes = act_row_bytes(format, n);
      std::vector<uint8_t> a(bytes), b(bytes);
      quantize_activation(generic_kernels(), format, x.data(), a.data(), n);
      quantize_activation(table, format, x.data(), b.data(), n);
      if (a != b) {
        std::printf("FAIL %s quantizes %s activations differently (n=%d)\n", table.isa,
                    format == ActFormat::Q8_0 ? "Q8_0" : "Q8_K", n);
        failures++;
      }
    }
  }
  return failures;
}

// Attention's P V: every table against a double reference (ragged head counts and row lengths).
int check_mix_rows(const KernelTable& table) {
  int failures = 0;
  for (int n : {16, 64, 80, 128}) {
    for (int ns : {1, 3, 4, 7}) {
      for (int nv : {1, 5, 64}) {
        const int ldp = 64, ldo = n + 3;
        const size_t ldv = size_t(n) + 5;
        const auto p = normals(size_t(ns) * ldp, 1.0f);
        const auto v = normals(size_t(nv) * ldv, 1.0f);
        auto out = normals(size_t(ns) * ldo, 1.0f);
        std::vector<double> want(out.begin(), out.end()), magnitude(out.size(), 0.0);
        for (int s = 0; s < ns; s++)
          for (int j = 0; j < nv; j++)
            for (int d = 0; d < n; d++) {
              const double term = double(p[size_t(s) * ldp + j]) * v[size_t(j) * ldv + d];
              want[size_t(s) * ldo + d] += term;
              magnitude[size_t(s) * ldo + d] += std::fabs(term);
            }
        table.mix_rows_f32(p.data(), ldp, ns, v.data(), ldv, nv, out.data(), ldo, n);
        for (size_t i = 0; i < out.size(); i++) {
          const bool in_row = int(i % size_t(ldo)) < n;
          const double err = std::fabs(out[i] - want[i]) / (magnitude[i] + std::fabs(want[i]) + 1e-30);
          if ((in_row && err > 2e-6) || (!in_row && out[i] != float(want[i]))) {
            std::printf("FAIL %s mix_rows_f32 n=%d ns=%d nv=%d at %zu\n", table.isa, n, ns, nv, i);
            failures++;
            break;
          }
        }
      }
    }
  }
  return failures;
}

// Softmax numerators and SwiGLU: the vectorized exp against libm in double, over the range the
// forward pass sees (scores minus their maximum, gate pre-activations).
int check_exp(const KernelTable& table) {
  int failures = 0;
  std::uniform_real_distribution<float> wide(-90.0f, 20.0f);
  for (int n : {1, 7, 16, 37, 64}) {
    std::vector<float> p(n), gate(n), up(n);
    for (auto& v : p) v = wide(rng);
    for (auto& v : gate) v = wide(rng);
    for (auto& v : up) v = wide(rng) / 10;
    const float max = 3.0f;
    std::vector<float> p0 = p, g0 = gate;
    const float sum = table.exp_sum_f32(p.data(), n, max);
    table.silu_mul_f32(gate.data(), up.data(), size_t(n));
    // Results below 1e-30 (exp of less than -69) are as good as zero next to the block's maximum.
    // p - max is rounded to float first, as every kernel does (its rounding alone moves exp by up
    // to 2e-6 relative for |p - max| near 60).
    double want_sum = 0;
    bool bad = false;
    for (int j = 0; j < n; j++) {
      const double e = std::exp(double(p0[j] - max)), s = double(g0[j]) / (1 + std::exp(-double(g0[j]))) * up[j];
      want_sum += e;
      if (!bad && (std::fabs(p[j] - e) > 4e-7 * e + 1e-30 || std::fabs(gate[j] - s) > 4e-7 * std::fabs(s) + 1e-30)) {
        std::printf("FAIL %s exp/silu at %d: exp(%g) = %g (want %g), silu %g (want %g)\n", table.isa, j, p0[j] - max, p[j], e,
                    gate[j], s);
        failures++;
        bad = true;
      }
    }
    if (std::fabs(sum - want_sum) > 1e-6 * want_sum + 1e-30) {
      std::printf("FAIL %s exp_sum_f32 n=%d: %g, want %g\n", table.isa, n, sum, want_sum);
      failures++;
    }
  }
  return failures;
}

// Round trip of the reference quantizers on gaussian data: relative RMS error bounds a little above
// what each bit width gives (a broken scale search or bit layout shows as a far larger error).
int check_quantizers() {
  struct Bound {
    DType type;
    double max_rel_rms;
  };
  const Bound bounds[] = {{DType::Q8_0, 0.006}, {DType::Q4_0, 0.11}, {DType::Q4_1, 0.11}, {DType::Q5_0, 0.055},
                          {DType::Q5_1, 0.055}, {DType::Q2_K, 0.42}, {DType::Q3_K, 0.22}, {DType::Q4_K, 0.1},
                          {DType::Q5_K, 0.05}, {DType::Q6_K, 0.025}};
  int failures = 0;
  const int n = 4096;
  const auto x = normals(n, 1.0f);
  std::vector<float> back(n);
  for (const Bound& b : bounds) {
    std::vector<uint8_t> q(dtype_row_bytes(b.type, n));
    quant::quantize_row(b.type, x.data(), q.data(), n);
    quant::dequantize_row(b.type, q.data(), back.data(), n);
    double err = 0, ref = 0;
    for (int k = 0; k < n; k++) err += (back[k] - x[k]) * (back[k] - x[k]), ref += x[k] * x[k];
    const double rel = std::sqrt(err / ref);
    std::printf("quantize %-5s relative RMS error %.4f\n", dtype_name(b.type), rel);
    if (!(rel <= b.max_rel_rms)) {
      std::printf("FAIL quantize %s: relative RMS error %.4f above %.4f\n", dtype_name(b.type), rel, b.max_rel_rms);
      failures++;
    }
  }
  return failures;
}

// KV-cache rows: each table's dot and axpy against a double reference over the values the row
// decodes to (the portable kernels' at(i)), for ragged head counts and row lengths; stores are the
// portable quantizer in every table.
int check_kv(const char* isa, const KVKernels* (*get)(KVType)) {
  int failures = 0;
  for (KVType type : {KVType::F16, KVType::Q8, KVType::Q4}) {
    const KVKernels* k = get(type);
    if (!k) {
      std::printf("FAIL %s has no KV kernels for %s\n", isa, kv_type_name(type));
      failures++;
      continue;
    }
    const KVKernels* ref = kv_kernels_generic(type);
    for (int n : {8, 13, 64, 80, 128, 256}) {
      const auto x = normals(size_t(n), 1.5f);
      std::vector<uint8_t> row(kv_row_bytes(type, n));
      ref->store(x.data(), row.data(), n);
      // The decoded row: the generic axpy with a = 1 into zeros.
      std::vector<float> values(size_t(n), 0.0f);
      const float one = 1.0f;
      ref->axpy(&one, 1, 1, row.data(), values.data(), size_t(n), n);
      // Kernels may round scale * code + zero once (FMA) or twice: errors scale with |v| + 2 |zero|.
      float zero = 0;
      if (type != KVType::F16) std::memcpy(&zero, row.data() + 4, 4);
      std::vector<double> mag(static_cast<size_t>(n));
      for (int i = 0; i < n; i++) mag[i] = std::fabs(values[i]) + 2 * std::fabs(zero);
      for (int nq : {1, 3, 8, 11}) {
        const size_t stride = size_t(n) + 3;
        const auto q = normals(size_t(nq) * stride, 1.0f);
        std::vector<float> out(size_t(nq) * 2, -1.0f);
        k->dot(q.data(), stride, nq, row.data(), n, out.data(), 2);
        auto acc = normals(size_t(nq) * stride, 1.0f);
        const auto acc0 = acc;
        const auto a = normals(size_t(nq) * 2, 1.0f);
        k->axpy(a.data(), 2, nq, row.data(), acc.data(), stride, n);
        bool bad = false;
        for (int h = 0; h < nq && !bad; h++) {
          double want = 0, magnitude = 0;
          for (int i = 0; i < n; i++) {
            want += double(q[h * stride + i]) * values[i];
            magnitude += std::fabs(double(q[h * stride + i])) * mag[i];
          }
          if (std::fabs(out[h * 2] - want) > 2e-6 * magnitude || out[h * 2 + 1] != -1.0f) bad = true;
          for (size_t i = 0; i < stride; i++) {
            const double base = acc0[h * stride + i];
            const double w = i < size_t(n) ? base + double(a[h * 2]) * values[i] : base;
            const double m = i < size_t(n) ? std::fabs(base) + std::fabs(double(a[h * 2])) * mag[i] : 0;
            if (std::fabs(acc[h * stride + i] - w) > 2e-7 * m + (i < size_t(n) ? 1e-30 : 0)) bad = true;
          }
        }
        if (bad) {
          std::printf("FAIL %s KV %s n=%d heads=%d\n", isa, kv_type_name(type), n, nq);
          failures++;
        }
      }
    }
  }
  std::printf("%s: KV cache kernels (f16, q8, q4): %s\n", isa, failures ? "FAILED" : "ok");
  return failures;
}

}  // namespace

int main() {
  int failures = check_quantizers();
  std::vector<const KernelTable*> tables = {&generic_kernels()};
  if (cpu_has_avx2() && avx2_kernels()) tables.push_back(avx2_kernels());
  else std::printf("avx2: skipped (not compiled in or the CPU lacks it)\n");
  if (cpu_has_avx512() && avx512_kernels()) tables.push_back(avx512_kernels());
  else std::printf("avx512: skipped (not compiled in or the CPU lacks it)\n");
  if (cpu_has_neon() && neon_kernels()) tables.push_back(neon_kernels());
  else std::printf("neon: skipped (not compiled in or the CPU lacks it)\n");
  if (cpu_has_neon_dotprod() && neon_dotprod_kernels()) tables.push_back(neon_dotprod_kernels());
  else std::printf("neon-dotprod: skipped (not compiled in or the CPU lacks it)\n");
  for (const KernelTable* t : tables) {
    const int f = check_gemm(*t) + check_activation_quantizers(*t) + check_mix_rows(*t) + check_exp(*t);
    std::printf("%s: %s\n", t->isa, f ? "FAILED" : "ok");
    failures += f;
  }
  failures += check_kv("generic", kv_kernels_generic);
  if (cpu_has_avx2() && kv_kernels_avx2(KVType::F16)) failures += check_kv("avx2", kv_kernels_avx2);
  if (cpu_has_neon() && kv_kernels_neon(KVType::F16)) failures += check_kv("neon", kv_kernels_neon);
  std::printf("selected: %s\n", kernels().isa);
  return failures ? 1 : 0;
}
