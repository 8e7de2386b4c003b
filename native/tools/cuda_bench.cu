// The CUDA backend's kernels on their own, for bench/gpu-check.mjs:
//   cuda_bench check [matmul|blocks|norm|topk|kv|attention]
//                      each kernel against a CPU reference on fresh random inputs (ragged shapes):
//                      GEMV/GEMM per weight type, the low-bit GGUF types (Q4_0..Q6_K) against the
//                      CPU's dequantization (GEMV, fp16 slices, embedding), the fused norms, RoPE + KV store per KV type (V
//                      rows byte-exact vs the CPU's quantizer), KV row round trips, flash and
//                      split attention per KV type, device top-k vs a host sort
//   cuda_bench bench   the ceilings (device-to-device copy bandwidth, read bandwidth) and the
//                      kernels' rates (GEMM TFLOP/s per weight type, GEMV GB/s)
// Output: one JSON object per line. Exit status 1 when a check fails or CUDA is unusable.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/block_types.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_util.h"
#include "cpu/kv_kernels.h"
#include "cuda/kernels.h"
#include "engine/kv_type.h"
#include "quant/reference.h"
#include "util/half.h"

using namespace ilm;
using namespace ilm::cuda;

namespace {

std::mt19937 rng(std::random_device{}());
int failures = 0;

std::vector<float> normal_values(size_t n, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename T>
DeviceArray<T> to_device(const std::vector<T>& host) {
  DeviceArray<T> d(host.size(), 0, "test data");
  check(cudaMemcpy(d.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return d;
}

template <typename T>
std::vector<T> to_host(const DeviceArray<T>& d) {
  std::vector<T> h(d.size());
  check(cudaMemcpy(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost), "download");
  return h;
}

void report_check(const std::string& what, double rel_err, double limit) {
  const bool ok = std::isfinite(rel_err) && rel_err <= limit;
  if (!ok) failures++;
  // JSON has no nan/inf (a NaN error is what an unwritten, poisoned output gives): null instead.
  char err[32];
  if (std::isfinite(rel_err))
    std::snprintf(err, sizeof err, "%.3g", rel_err);
  else
    std::snprintf(err, sizeof err, "null");
  std::printf("{\"kind\":\"check\",\"what\":\"%s\",\"rel_err\":%s,\"limit\":%.3g,\"ok\":%s}\n", what.c_str(), err,
              limit, ok ? "true" : "false");
  std::fflush(stdout);
}

double rel_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

const char* type_name(WType t) {
  switch (t) {
    case WType::F32: return "F32";
    case WType::F16: return "F16";
    case WType::BF16: return "BF16";
    case WType::Q8: return "Q8_0";
    case WType::Blocks: return "blocks";
  }
  return "?";
}

// A random weight matrix in a device layout plus the exact values it holds.
struct TestMatrix {
  DeviceArray<uint8_t> data;
  DeviceArray<uint16_t> scales;
  DevMatrix view;
  std::vector<float> values;  // what the weights are, as floats
  std::vector<float> q_scales;  // Q8: per-block scales
  std::vector<int8_t> quants;
};

TestMatrix make_matrix(WType type, int rows, int cols) {
  TestMatrix m;
  const size_t n = size_t(rows) * cols;
  std::vector<float> v = normal_values(n, 1.0f / std::sqrt(float(cols)));
  m.values.resize(n);
  std::vector<uint8_t> bytes;
  switch (type) {
    case WType::F32:
      m.values = v;
      bytes.resize(n * 4);
      std::memcpy(bytes.data(), v.data(), n * 4);
      break;
    case WType::F16:
    case WType::BF16: {
      bytes.resize(n * 2);
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (size_t i = 0; i < n; i++) {
        h[i] = type == WType::F16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
        m.values[i] = type == WType::F16 ? fp16_to_f32(h[i]) : bf16_to_f32(h[i]);
      }
      break;
    }
    case WType::Q8: {
      bytes.resize(n);
      std::vector<uint16_t> sc(n / 32);
      m.q_scales.resize(n / 32);
      m.quants.resize(n);
      for (size_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int k = 0; k < 32; k++) amax = std::max(amax, std::fabs(v[b * 32 + k]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        sc[b] = f32_to_fp16(d);
        m.q_scales[b] = fp16_to_f32(sc[b]);
        for (int k = 0; k < 32; k++) {
          const int8_t q = int8_t(std::nearbyint(v[b * 32 + k] * id));
          m.quants[b * 32 + k] = q;
          bytes[b * 32 + k] = uint8_t(q);
          m.values[b * 32 + k] = m.q_scales[b] * float(q);
        }
      }
      m.scales = to_device(sc);
      break;
    }
    case WType::Blocks: throw Error("make_matrix: low-bit matrices come from make_block_matrix");
  }
  m.data = to_device(bytes);
  m.view = dense_matrix(type, rows, cols, m.data.get(), m.scales.get());
  return m;
}

// The CPU backend's activation quantization (cpu/kquant_generic.cpp, quantize_q8_0).
void quantize_ref(const std::vector<float>& x, std::vector<int8_t>& q, std::vector<float>& d) {
  q.resize(x.size());
  d.resize(x.size() / 32);
  for (size_t b = 0; b < d.size(); b++) {
    float amax = 0;
    for (int k = 0; k < 32; k++) amax = std::max(amax, std::fabs(x[b * 32 + k]));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    d[b] = fp16_to_f32(f32_to_fp16(amax / 127.0f));
    for (int k = 0; k < 32; k++) q[b * 32 + k] = int8_t(std::nearbyint(x[b * 32 + k] * id));
  }
}

std::vector<double> matmul_ref(const TestMatrix& m, const std::vector<float>& x, int nt, bool q8_act) {
  const int rows = m.view.rows, cols = m.view.cols;
  std::vector<double> y(size_t(nt) * rows);
  std::vector<int8_t> xq;
  std::vector<float> xd;
  if (q8_act) quantize_ref(x, xq, xd);
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < rows; r++) {
      double s = 0;
      if (q8_act) {
        for (int b = 0; b < cols / 32; b++) {
          int64_t is = 0;
          for (int k = 0; k < 32; k++)
            is += int64_t(m.quants[size_t(r) * cols + b * 32 + k]) * xq[size_t(t) * cols + b * 32 + k];
          s += double(m.q_scales[size_t(r) * cols / 32 + b]) * xd[size_t(t) * cols / 32 + b] * double(is);
        }
      } else {
        for (int k = 0; k < cols; k++) s += double(m.values[size_t(r) * cols + k]) * x[size_t(t) * cols + k];
      }
      y[size_t(t) * rows + r] = s;
    }
  return y;
}

void check_quantize() {
  const int rows = 3, cols = 96;
  std::vector<float> x = normal_values(size_t(rows) * cols, 2.0f);
  x[5] = 0.0f;
  for (int k = 32; k < 64; k++) x[k] = 0.0f;  // an all-zero block: scale 0
  std::vector<int8_t> q;
  std::vector<float> d;
  quantize_ref(x, q, d);
  auto dx = to_device(x);
  DeviceArray<int8_t> gq(x.size(), 0, "q");
  DeviceArray<float> gd(x.size() / 32, 0, "d");
  quantize_q8(dx.get(), Q8Act{gq.get(), gd.get()}, rows, cols, nullptr);
  const auto hq = to_host(gq);
  const auto hd = to_host(gd);
  size_t bad = 0;
  for (size_t i = 0; i < q.size(); i++) bad += hq[i] != q[i];
  for (size_t i = 0; i < d.size(); i++) bad += hd[i] != d[i];
  report_check("quantize_q8 bit-exact", double(bad), 0.0);
}

void check_matmul(WType type, int nt, int rows, int cols, bool gemm_path) {
  TestMatrix m = make_matrix(type, rows, cols);
  std::vector<float> x = normal_values(size_t(nt) * cols, 1.0f);
  const bool q8 = type == WType::Q8;
  if (gemm_path && !q8)  // the GEMM reads fp16 activations: round the reference's inputs alike
    for (auto& v : x) v = fp16_to_f32(f32_to_fp16(v));
  std::vector<double> ref = matmul_ref(m, x, nt, q8);
  // Residual epilogue: y starts at a known value and the product is added.
  std::vector<float> y0 = normal_values(size_t(nt) * rows, 1.0f);
  for (size_t i = 0; i < ref.size(); i++) ref[i] += y0[i];

  auto dx = to_device(x);
  auto dy = to_device(y0);
  DeviceArray<uint16_t> x16(x.size(), 0, "x16");
  DeviceArray<int8_t> xq(x.size(), 0, "xq");
  DeviceArray<float> xd(x.size() / 32, 0, "xd");
  const Q8Act act{xq.get(), xd.get()};
  if (q8) quantize_q8(dx.get(), act, nt, cols, nullptr);
  if (gemm_path) {
    if (!q8) to_f16(dx.get(), x16.get(), x.size(), nullptr);
    gemm(m.view, x16.get(), act, nt, dy.get(), rows, Epilogue::Add, nullptr);
  } else {
    gemv(m.view, dx.get(), act, nt, dy.get(), rows, Epilogue::Add, nullptr);
  }
  check(cudaDeviceSynchronize(), "matmul");
  const double limit = type == WType::F32 && gemm_path ? 2e-3 : 1e-5;
  char what[128];
  std::snprintf(what, sizeof what, "%s %s nt=%d rows=%d cols=%d", gemm_path ? "gemm" : "gemv", type_name(type), nt, rows, cols);
  report_check(what, rel_error(to_host(dy), ref), limit);
}

void check_gemv_swiglu(WType type, int nt, int ffn, int cols) {
  TestMatrix m = make_matrix(type, 2 * ffn, cols);
  std::vector<float> x = normal_values(size_t(nt) * cols, 1.0f);
  const bool q8 = type == WType::Q8;
  const std::vector<double> gu = matmul_ref(m, x, nt, q8);
  std::vector<double> ref(size_t(nt) * ffn);
  for (int t = 0; t < nt; t++)
    for (int i = 0; i < ffn; i++) {
      const double g = gu[size_t(t) * 2 * ffn + i], u = gu[size_t(t) * 2 * ffn + ffn + i];
      ref[size_t(t) * ffn + i] = g / (1 + std::exp(-g)) * u;
    }
  auto dx = to_device(x);
  DeviceArray<float> out(ref.size(), 0, "out");
  DeviceArray<int8_t> xq(x.size(), 0, "xq");
  DeviceArray<float> xd(x.size() / 32, 0, "xd");
  const Q8Act act{xq.get(), xd.get()};
  if (q8) quantize_q8(dx.get(), act, nt, cols, nullptr);
  gemv_swiglu(m.view, dx.get(), act, nt, out.get(), nullptr);
  check(cudaDeviceSynchronize(), "gemv_swiglu");
  char what[128];
  std::snprintf(what, sizeof what, "gemv_swiglu %s nt=%d ffn=%d cols=%d", type_name(type), nt, ffn, cols);
  report_check(what, rel_error(to_host(out), ref), 1e-5);
}

// ---------------------------------------------------------------- KV cache, attention, top-k

const char* kv_name(KVType t) { return kv_type_name(t); }

// One layer's cache on the device in the backend's layout (kernels.h), written through
// kv_unpack_rows from rows in the CPU's format: that path is checked along the way.
struct TestKV {
  KVType type;
  int n_kv, hd, capacity;
  DeviceArray<uint8_t> data;
  DeviceArray<float> pairs;
  KVLayer layer;
  size_t row_bytes() const { return kv_row_bytes(type, hd); }  // one (position, head) row, CPU format

  TestKV(KVType t, int positions, int n_kv_heads, int head_dim)
      : type(t), n_kv(n_kv_heads), hd(head_dim),
        capacity((positions + kKVPositionAlign - 1) / kKVPositionAlign * kKVPositionAlign) {
    const size_t plane = size_t(n_kv) * capacity;
    data = DeviceArray<uint8_t>(2 * plane * kv_code_bytes(t, hd), 0, "kv");
    if (kv_quantized(t)) pairs = DeviceArray<float>(2 * plane * 2, 0, "kv pairs");
    layer.type = t;
    layer.capacity = capacity;
    layer.n_kv_heads = n_kv;
    layer.head_dim = hd;
    layer.k.data = data.get();
    layer.v.data = data.get() + plane * kv_code_bytes(t, hd);
    if (kv_quantized(t)) {
      layer.k.sz = pairs.get();
      layer.v.sz = pairs.get() + plane * 2;
    }
  }
  void upload(bool value, int from, int n, const std::vector<uint8_t>& rows) {
    DeviceArray<uint8_t> d(rows.size(), 0, "rows");
    check(cudaMemcpy(d.get(), rows.data(), rows.size(), cudaMemcpyHostToDevice), "upload");
    kv_unpack_rows(layer, value, from, n, d.get(), nullptr);
    check(cudaDeviceSynchronize(), "kv_unpack_rows");
  }
  std::vector<uint8_t> download(bool value, int from, int n) const {
    DeviceArray<uint8_t> d(size_t(n) * n_kv * row_bytes(), 0, "rows");
    kv_pack_rows(layer, value, from, n, d.get(), nullptr);
    return to_host(d);
  }
};

// CPU-format rows of n positions x n_kv heads from values [n][n_kv][hd] (the CPU's quantizer).
std::vector<uint8_t> cpu_rows(KVType type, const std::vector<float>& values, int n, int n_kv, int hd) {
  const size_t rb = kv_row_bytes(type, hd);
  std::vector<uint8_t> rows(size_t(n) * n_kv * rb);
  for (size_t r = 0; r < size_t(n) * n_kv; r++) {
    const float* x = values.data() + r * hd;
    uint8_t* dst = rows.data() + r * rb;
    if (type == KVType::F32)
      std::memcpy(dst, x, size_t(hd) * 4);
    else
      cpu::kv_kernels_generic(type)->store(x, dst, hd);
  }
  return rows;
}

// What a CPU-format row holds, as floats (the CPU's dequantization).
float cpu_value(KVType type, const uint8_t* row, int i) {
  switch (type) {
    case KVType::F32: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
    case KVType::F16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return fp16_to_f32(h);
    }
    default: {
      float s, z;
      std::memcpy(&s, row, 4);
      std::memcpy(&z, row + 4, 4);
      const int c = type == KVType::Q8 ? row[8 + i] : (row[8 + i / 2] >> ((i & 1) * 4)) & 15;
      return s * float(c) + z;
    }
  }
}

// Rows of positions [from, from + n) round-trip through the device layout unchanged.
void check_kv_rows(KVType type, int n_kv, int hd) {
  const int n = 77;
  TestKV kv(type, n + 5, n_kv, hd);
  const auto kr = cpu_rows(type, normal_values(size_t(n) * n_kv * hd, 1.0f), n, n_kv, hd);
  const auto vr = cpu_rows(type, normal_values(size_t(n) * n_kv * hd, 1.0f), n, n_kv, hd);
  kv.upload(false, 5, n, kr);
  kv.upload(true, 5, n, vr);
  const auto k2 = kv.download(false, 5, n), v2 = kv.download(true, 5, n);
  size_t bad = 0;
  for (size_t i = 0; i < kr.size(); i++) bad += kr[i] != k2[i];
  for (size_t i = 0; i < vr.size(); i++) bad += vr[i] != v2[i];
  char what[128];
  std::snprintf(what, sizeof what, "kv rows %s round trip heads=%d hd=%d (bytes differing)", kv_name(type), n_kv, hd);
  report_check(what, double(bad), 0.0);
}

// RoPE + store of nt tokens at start: Q against the CPU's rotation, V rows byte-exact against the
// CPU's quantizer (same inputs), K rows within one code step of it (the rotation's float rounding
// may differ by an ulp and move a value across a rounding boundary).
void check_rope_store(KVType type, bool pairwise, int nt, int start, int n_heads, int n_kv, int hd) {
  const int half = hd / 2, row_len = (n_heads + 2 * n_kv) * hd;
  const float base = 1e6f;
  std::vector<float> qkv = normal_values(size_t(nt) * row_len, 1.0f);
  StepParams p{};
  p.start_pos = start;
  p.n_tokens = nt;
  p.top_k = 1;
  p.theta_scale = std::pow(base, -2.0f / float(hd));
  for (int i = 0; i < half; i++) p.inv_freq[i] = 1.0f / std::pow(base, float(2 * i) / float(hd));
  // The CPU backend's angles and rotation (cpu_backend.cpp rope_angles / apply_rope).
  std::vector<float> rot(qkv);
  for (int t = 0; t < nt; t++) {
    std::vector<float> cs(hd);
    const float pos = float(start + t);
    float theta = pos;
    for (int i = 0; i < half; i++) {
      const float th = pairwise ? theta : pos * p.inv_freq[i];
      cs[2 * i] = std::cos(th);
      cs[2 * i + 1] = std::sin(th);
      theta *= p.theta_scale;
    }
    for (int h = 0; h < n_heads + n_kv; h++) {
      float* v = rot.data() + size_t(t) * row_len + size_t(h) * hd;
      for (int i = 0; i < half; i++) {
        const int a = pairwise ? 2 * i : i, b = pairwise ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
        v[b] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
      }
    }
  }
  TestKV kv(type, start + nt, n_kv, hd);
  DeviceArray<uint8_t> dp(sizeof p, 0, "params");
  check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
  auto dqkv = to_device(qkv);
  DeviceArray<float> q_out(size_t(nt) * n_heads * hd, 0, "q");
  rope_store(dqkv.get(), reinterpret_cast<const StepParams*>(dp.get()), nt, n_heads, pairwise, q_out.get(), kv.layer,
             nullptr);
  check(cudaDeviceSynchronize(), "rope_store");
  const auto qh = to_host(q_out);
  std::vector<double> qref(qh.size());
  for (int t = 0; t < nt; t++)
    for (int i = 0; i < n_heads * hd; i++) qref[size_t(t) * n_heads * hd + i] = rot[size_t(t) * row_len + i];
  char what[200];
  std::snprintf(what, sizeof what, "rope_store %s %s Q nt=%d start=%d hd=%d", kv_name(type),
                pairwise ? "pairwise" : "halves", nt, start, hd);
  report_check(what, rel_error(qh, qref), 1e-5);
  // K and V rows of the new positions, against the CPU's store of the reference values.
  std::vector<float> kref(size_t(nt) * n_kv * hd), vref(kref.size());
  for (int t = 0; t < nt; t++)
    for (int i = 0; i < n_kv * hd; i++) {
      kref[size_t(t) * n_kv * hd + i] = rot[size_t(t) * row_len + size_t(n_heads) * hd + i];
      vref[size_t(t) * n_kv * hd + i] = qkv[size_t(t) * row_len + size_t(n_heads + n_kv) * hd + i];
    }
  const auto kcpu = cpu_rows(type, kref, nt, n_kv, hd), vcpu = cpu_rows(type, vref, nt, n_kv, hd);
  const auto kgpu = kv.download(false, start, nt), vgpu = kv.download(true, start, nt);
  size_t vbad = 0;
  for (size_t i = 0; i < vcpu.size(); i++) vbad += vcpu[i] != vgpu[i];
  std::snprintf(what, sizeof what, "rope_store %s V rows byte-exact vs CPU (bytes differing) nt=%d hd=%d",
                kv_name(type), nt, hd);
  report_check(what, double(vbad), 0.0);
  // K: per value, |gpu - cpu| in steps of the CPU row (f32/f16: relative error instead).
  const size_t rb = kv_row_bytes(type, hd);
  double worst = 0;
  size_t moved = 0;
  for (size_t r = 0; r < size_t(nt) * n_kv; r++) {
    float step = 0;
    if (kv_quantized(type)) std::memcpy(&step, kcpu.data() + r * rb, 4);
    for (int i = 0; i < hd; i++) {
      const double a = cpu_value(type, kcpu.data() + r * rb, i), b = cpu_value(type, kgpu.data() + r * rb, i);
      const double d =
          std::fabs(a - b) / (kv_quantized(type) ? std::max(double(step), 1e-30) : std::max(std::fabs(a), 1e-3));
      worst = std::max(worst, d);
      moved += kv_quantized(type) && d > 0.5;
    }
  }
  std::snprintf(what, sizeof what, "rope_store %s %s K vs CPU (%s; %zu of %zu values a step off)", kv_name(type),
                pairwise ? "pairwise" : "halves", kv_quantized(type) ? "steps" : "rel", moved, size_t(nt) * n_kv * hd);
  report_check(what, worst, kv_quantized(type) ? 1.01 : 2e-3);
}

// Causal GQA attention of nt query rows at positions start..start+nt-1 against a cache of `type`
// (reference: double precision over the values the cache holds). Positions past the end hold
// NaN rows and scales: they must never be read into a result.
void check_attention(KVType type, int nt, int start, int n_heads, int n_kv, int hd, bool flash, int splits) {
  const int G = n_heads / n_kv, len = start + nt;
  std::vector<float> q = normal_values(size_t(nt) * n_heads * hd, 1.0f);
  TestKV kv(type, len + 1, n_kv, hd);
  const auto kr = cpu_rows(type, normal_values(size_t(len) * n_kv * hd, 1.0f), len, n_kv, hd);
  const auto vr = cpu_rows(type, normal_values(size_t(len) * n_kv * hd, 1.0f), len, n_kv, hd);
  kv.upload(false, 0, len, kr);
  kv.upload(true, 0, len, vr);
  {
    const int rest = kv.capacity - len;
    const std::vector<uint8_t> nan_rows(size_t(rest) * n_kv * kv.row_bytes(), 0xff);  // NaN floats, halves, scales
    kv.upload(false, len, rest, nan_rows);
    kv.upload(true, len, rest, nan_rows);
  }
  const size_t rb = kv.row_bytes();
  std::vector<double> ref(q.size());
  for (int t = 0; t < nt; t++)
    for (int h = 0; h < n_heads; h++) {
      const int g = h / G, n_keys = start + t + 1;
      std::vector<double> s(n_keys);
      double mx = -1e300;
      for (int j = 0; j < n_keys; j++) {
        double dot = 0;
        const uint8_t* row = kr.data() + (size_t(j) * n_kv + g) * rb;
        for (int d = 0; d < hd; d++) dot += double(q[(size_t(t) * n_heads + h) * hd + d]) * cpu_value(type, row, d);
        s[j] = dot / std::sqrt(double(hd));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int j = 0; j < n_keys; j++) sum += (s[j] = std::exp(s[j] - mx));
      for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = 0; j < n_keys; j++) o += s[j] * cpu_value(type, vr.data() + (size_t(j) * n_kv + g) * rb, d);
        ref[(size_t(t) * n_heads + h) * hd + d] = o / sum;
      }
    }
  StepParams p{};
  p.start_pos = start;
  p.n_tokens = nt;
  DeviceArray<uint8_t> dp(sizeof p, 0, "params");
  check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
  auto dq = to_device(q);
  DeviceArray<float> out(q.size(), 0, "out");
  DeviceArray<float> partial(size_t(nt) * n_heads * splits * (hd + 2), 0, "partial");
  DeviceArray<int> counters(size_t(nt) * n_kv, 0, "counters");
  check(cudaMemset(counters.get(), 0, counters.bytes()), "memset");
  const AttentionShape shape{nt, n_heads, n_kv, hd};
  const auto* params = reinterpret_cast<const StepParams*>(dp.get());
  auto run = [&] {
    check(cudaMemset(out.get(), 0xff, out.bytes()), "poison");  // every output must be written
    if (flash)
      attention_flash(dq.get(), kv.layer, params, shape, out.get(), nullptr);
    else
      attention_split(dq.get(), kv.layer, params, shape, splits, partial.get(), counters.get(), out.get(), nullptr);
    check(cudaDeviceSynchronize(), "attention");
    return to_host(out);
  };
  const auto first = run();
  char what[200];
  std::snprintf(what, sizeof what, "attention %s %s nt=%d start=%d heads=%d/%d hd=%d splits=%d", flash ? "flash" : "split",
                kv_name(type), nt, start, n_heads, n_kv, hd, splits);
  report_check(what, rel_error(first, ref), flash ? 5e-3 : 1e-5);
  if (!flash && splits > 1) {
    // The last block's merge must leave the counters at zero and give the same bits again.
    const auto second = run();
    size_t differ = std::memcmp(first.data(), second.data(), first.size() * 4) != 0;
    for (int c : to_host(counters)) differ += c != 0;
    std::snprintf(what, sizeof what, "attention split %s hd=%d repeatable, counters reset (splits=%d)", kv_name(type), hd,
                  splits);
    report_check(what, double(differ), 0.0);
  }
}

// Device top-k against a host partial sort in the sampler's order (ties: lower id first), with
// planted ties, a tie at the top, and -0/+0.
void check_top_k(int n, int k) {
  std::vector<float> logits = normal_values(size_t(n), 3.0f);
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (int i = 0; i < n / 50 + 2; i++) logits[size_t(pick(rng))] = logits[size_t(pick(rng))];
  logits[size_t(pick(rng))] = *std::max_element(logits.begin(), logits.end());
  logits[size_t(pick(rng))] = 0.0f;
  logits[size_t(pick(rng))] = -0.0f;
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; i++) ids[i] = i;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  StepParams p{};
  p.top_k = k;
  DeviceArray<uint8_t> dp(sizeof p, 0, "params");
  check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
  auto dl = to_device(logits);
  DeviceArray<unsigned long long> scratch(size_t(kTopKBlocks) * kMaxTopK, 0, "scratch");
  DeviceArray<float> values(kMaxTopK, 0, "values");
  DeviceArray<int32_t> got(kMaxTopK, 0, "ids");
  top_k(dl.get(), n, reinterpret_cast<const StepParams*>(dp.get()), scratch.get(), values.get(), got.get(), nullptr);
  check(cudaDeviceSynchronize(), "top_k");
  const auto hv = to_host(values);
  const auto hi = to_host(got);
  size_t bad = 0;
  for (int i = 0; i < k; i++) bad += hi[i] != ids[i] || hv[i] != logits[ids[i]];
  char what[96];
  std::snprintf(what, sizeof what, "top_k n=%d k=%d (entries differing from the host's)", n, k);
  report_check(what, double(bad), 0.0);
}

// rmsnorm_q8 against rmsnorm + quantize_q8 (the unfused pair): the same values and bytes.
void check_rmsnorm_q8(int rows, int dim) {
  std::vector<float> x = normal_values(size_t(rows) * dim, 1.5f), w = normal_values(size_t(dim), 1.0f);
  auto dx = to_device(x);
  auto dw = to_device(w);
  DeviceArray<float> xn(x.size(), 0, "xn"), xn2(x.size(), 0, "xn2");
  DeviceArray<int8_t> q1(x.size(), 0, "q1"), q2(x.size(), 0, "q2");
  DeviceArray<float> d1(x.size() / 32, 0, "d1"), d2(x.size() / 32, 0, "d2");
  rmsnorm(dx.get(), dw.get(), xn.get(), rows, dim, 1e-5f, nullptr);
  quantize_q8(xn.get(), Q8Act{q1.get(), d1.get()}, rows, dim, nullptr);
  rmsnorm_q8(dx.get(), dw.get(), xn2.get(), Q8Act{q2.get(), d2.get()}, rows, dim, 1e-5f, nullptr);
  check(cudaDeviceSynchronize(), "rmsnorm_q8");
  const auto a = to_host(q1), b = to_host(q2);
  const auto da = to_host(d1), db = to_host(d2);
  const auto xa = to_host(xn), xb = to_host(xn2);
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); i++) bad += a[i] != b[i] || xa[i] != xb[i];
  for (size_t i = 0; i < da.size(); i++) bad += da[i] != db[i];
  char what[96];
  std::snprintf(what, sizeof what, "rmsnorm_q8 rows=%d dim=%d == rmsnorm + quantize_q8 (values differing)", rows, dim);
  report_check(what, double(bad), 0.0);
}

// The decode fusion: a residual GEMV leaves per-block sums of squares, the next GEMV normalizes x
// with them as it loads it. Against rmsnorm() and then the plain GEMV (float weights).
void check_fused_norm(WType type, int nt, int dim, int rows) {
  TestMatrix wo = make_matrix(type, dim, dim);  // x += Wo a
  TestMatrix w = make_matrix(type, rows, dim);  // y = W rmsnorm(x)
  std::vector<float> a = normal_values(size_t(nt) * dim, 1.0f), x0 = normal_values(size_t(nt) * dim, 1.0f);
  std::vector<float> nw = normal_values(size_t(dim), 1.0f);
  auto da = to_device(a);
  auto dx = to_device(x0);
  auto dnw = to_device(nw);
  const int n_partials = (dim + kGemvRowsPerBlock - 1) / kGemvRowsPerBlock;
  DeviceArray<float> ss(size_t(nt) * n_partials, 0, "ss"), xn(x0.size(), 0, "xn");
  DeviceArray<float> y1(size_t(nt) * rows, 0, "y1"), y2(size_t(nt) * rows, 0, "y2");
  const Q8Act none{};
  gemv(wo.view, da.get(), none, nt, dx.get(), dim, Epilogue::Add, nullptr, {}, ss.get());
  rmsnorm(dx.get(), dnw.get(), xn.get(), nt, dim, 1e-5f, nullptr);
  gemv(w.view, xn.get(), none, nt, y1.get(), rows, Epilogue::Store, nullptr);
  gemv(w.view, dx.get(), none, nt, y2.get(), rows, Epilogue::Store, nullptr, NormIn{dnw.get(), ss.get(), n_partials, 1e-5f});
  check(cudaDeviceSynchronize(), "fused norm");
  const auto r1 = to_host(y1), r2 = to_host(y2);
  const std::vector<double> ref(r1.begin(), r1.end());
  char what[128];
  std::snprintf(what, sizeof what, "gemv %s fused rmsnorm nt=%d dim=%d rows=%d vs rmsnorm + gemv", type_name(type), nt, dim,
                rows);
  report_check(what, rel_error(r2, ref), 1e-5);
}

// ---- the low-bit GGUF types (WType::Blocks), against the CPU's quantizer and dequantizer


// Rows of random weights quantized by the CPU's quantizer, in segments of the given types (as a
// Q4_K_M file stacks Q4_K and Q6_K rows), on the device as a Blocks matrix; `values` are the
// CPU's dequantization of those bytes, i.e. exactly the weights the kernels must use.
struct BlockMatrix {
  std::vector<DeviceArray<uint8_t>> data;
  DevMatrix view;
  std::vector<float> values;
};

BlockMatrix make_block_matrix(const std::vector<std::pair<BlockType, int>>& segments, int cols) {
  BlockMatrix m;
  m.view.type = WType::Blocks;
  m.view.cols = cols;
  for (const auto& [type, rows] : segments) {
    const DType dt = dtype_of(type);
    const size_t row_bytes = dtype_row_bytes(dt, cols);
    std::vector<uint8_t> bytes(row_bytes * rows);
    std::vector<float> v = normal_values(size_t(rows) * cols, 1.0f / std::sqrt(float(cols)));
    std::vector<float> back(cols);
    for (int r = 0; r < rows; r++) {
      quant::quantize_row(dt, v.data() + size_t(r) * cols, bytes.data() + r * row_bytes, cols);
      quant::dequantize_row(dt, bytes.data() + r * row_bytes, back.data(), cols);
      m.values.insert(m.values.end(), back.begin(), back.end());
    }
    m.data.push_back(to_device(bytes));
    BlockSegment& seg = m.view.segments[m.view.n_segments++];
    seg = {type, m.view.rows, rows, m.data.back().get(), row_bytes};
    m.view.rows += rows;
  }
  return m;
}

std::string segments_name(const std::vector<std::pair<BlockType, int>>& segments) {
  std::string out;
  for (const auto& [type, rows] : segments) out += (out.empty() ? "" : "+") + std::string(dtype_name(dtype_of(type)));
  return out;
}

// Decode GEMV (Q8 activations) with the residual epilogue; the reference multiplies the CPU's
// dequantized weights with the dequantized Q8 activations in double.
void check_blocks_gemv(const std::vector<std::pair<BlockType, int>>& segments, int nt, int cols) {
  BlockMatrix m = make_block_matrix(segments, cols);
  const int rows = m.view.rows;
  std::vector<float> x = normal_values(size_t(nt) * cols, 1.0f);
  std::vector<int8_t> xq;
  std::vector<float> xd;
  quantize_ref(x, xq, xd);
  std::vector<float> y0 = normal_values(size_t(nt) * rows, 1.0f);
  std::vector<double> ref(y0.begin(), y0.end());
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int k = 0; k < cols; k++)
        sum += double(m.values[size_t(r) * cols + k]) * double(xd[(size_t(t) * cols + k) / 32]) * xq[size_t(t) * cols + k];
      ref[size_t(t) * rows + r] += sum;
    }
  auto dx = to_device(x);
  auto dy = to_device(y0);
  DeviceArray<int8_t> gq(x.size(), 0, "xq");
  DeviceArray<float> gd(x.size() / 32, 0, "xd");
  const Q8Act act{gq.get(), gd.get()};
  quantize_q8(dx.get(), act, nt, cols, nullptr);
  gemv(m.view, nullptr, act, nt, dy.get(), rows, Epilogue::Add, nullptr);
  check(cudaDeviceSynchronize(), "gemv blocks");
  char what[160];
  std::snprintf(what, sizeof what, "gemv %s nt=%d rows=%d cols=%d", segments_name(segments).c_str(), nt, rows, cols);
  report_check(what, rel_error(to_host(dy), ref), 1e-5);
}

// Prefill: every segment's rows in fp16 slices (bit-exact against the CPU's values rounded to
// fp16), then the F16 GEMM on each slice into its columns of y, as the backend's gemm_blocks does.
void check_blocks_gemm(const std::vector<std::pair<BlockType, int>>& segments, int nt, int cols, int slice) {
  BlockMatrix m = make_block_matrix(segments, cols);
  const int rows = m.view.rows;
  std::vector<float> x = normal_values(size_t(nt) * cols, 1.0f);
  for (auto& v : x) v = fp16_to_f32(f32_to_fp16(v));
  std::vector<double> ref(size_t(nt) * rows, 0.0);
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int k = 0; k < cols; k++) sum += double(fp16_to_f32(f32_to_fp16(m.values[size_t(r) * cols + k]))) * x[size_t(t) * cols + k];
      ref[size_t(t) * rows + r] = sum;
    }
  auto dx = to_device(x);
  DeviceArray<uint16_t> x16(x.size(), 0, "x16");
  to_f16(dx.get(), x16.get(), x.size(), nullptr);
  DeviceArray<float> dy(ref.size(), 0, "y");
  DeviceArray<uint16_t> slice_f16(size_t(slice) * cols, 0, "slice");
  size_t wrong_halves = 0;
  for (int i = 0; i < m.view.n_segments; i++) {
    const BlockSegment& seg = m.view.segments[i];
    for (int r0 = 0; r0 < seg.rows; r0 += slice) {
      const int n = std::min(slice, seg.rows - r0);
      dequantize_f16(m.view, i, r0, n, slice_f16.get(), nullptr);
      std::vector<uint16_t> h(size_t(n) * cols);
      check(cudaMemcpy(h.data(), slice_f16.get(), h.size() * 2, cudaMemcpyDeviceToHost), "download");
      // Compared as values: the CPU's d * 0 keeps d's sign (-0), the GPU's s * 0 + 0 gives +0.
      for (size_t k = 0; k < h.size(); k++)
        wrong_halves += fp16_to_f32(h[k]) != fp16_to_f32(f32_to_fp16(m.values[size_t(seg.first_row + r0) * cols + k]));
      gemm(dense_matrix(WType::F16, n, cols, slice_f16.get()), x16.get(), {}, nt, dy.get() + seg.first_row + r0, rows,
           Epilogue::Store, nullptr);
    }
  }
  check(cudaDeviceSynchronize(), "gemm blocks");
  char what[160];
  std::snprintf(what, sizeof what, "dequantize_f16 %s rows=%d cols=%d bit-exact", segments_name(segments).c_str(), rows, cols);
  report_check(what, double(wrong_halves), 0.0);
  std::snprintf(what, sizeof what, "gemm %s nt=%d rows=%d cols=%d slices of %d", segments_name(segments).c_str(), nt, rows,
                cols, slice);
  report_check(what, rel_error(to_host(dy), ref), 1e-5);
}

// Embedding rows of a Blocks table: bit-exact against the CPU's dequantization.
void check_blocks_embed(BlockType type, int vocab, int dim) {
  BlockMatrix m = make_block_matrix({{type, vocab}}, dim);
  std::vector<int32_t> tokens = {0, vocab - 1, vocab / 2, 3 % vocab, vocab - 1};
  auto dt = to_device(tokens);
  DeviceArray<float> x(tokens.size() * dim, 0, "x");
  embed(m.view, dt.get(), int(tokens.size()), x.get(), nullptr);
  const auto got = to_host(x);
  size_t wrong = 0;
  for (size_t t = 0; t < tokens.size(); t++)
    for (int k = 0; k < dim; k++) wrong += got[t * dim + k] != m.values[size_t(tokens[t]) * dim + k];
  report_check(std::string("embed ") + dtype_name(dtype_of(type)) + " bit-exact", double(wrong), 0.0);
}

void run_block_checks() {
  for (int i = 0; i < kBlockTypes; i++) {
    const BlockType t = BlockType(i);
    const int cols = block_values(t) == 256 ? 512 : 96;  // K-quants: whole super-blocks
    for (int nt : {1, 3, 8}) check_blocks_gemv({{t, 37}}, nt, cols);
    check_blocks_gemv({{t, 301}}, 1, 4096);
    check_blocks_gemm({{t, 200}}, 133, cols, 64);
    check_blocks_embed(t, 50, cols);
  }
  // Mixed stacks as the official _M files have them (Q|K rows in one type, V rows in another).
  check_blocks_gemv({{BlockType::Q4_K, 40}, {BlockType::Q6_K, 24}}, 1, 1024);
  check_blocks_gemv({{BlockType::Q3_K, 16}, {BlockType::Q5_K, 9}, {BlockType::Q4_K, 30}}, 5, 256);
  check_blocks_gemm({{BlockType::Q4_K, 70}, {BlockType::Q6_K, 50}}, 40, 512, 32);
}

// Groups run separately by gpu-check (one process each), so that a fault in one kernel cannot
// hide the results of the others: matmul, blocks, norm, topk, kv, attention (empty: all).
int run_checks(const std::string& only) {
  auto want = [&](const char* group) { return only.empty() || only == group; };
  if (want("matmul")) {
    check_quantize();
    for (WType t : {WType::F32, WType::F16, WType::BF16, WType::Q8}) {
      for (int nt : {1, 3, 8}) check_matmul(t, nt, 37, 96, false);
      check_matmul(t, 1, 300, 4096, false);
      check_matmul(t, 9, 200, 320, true);
      check_matmul(t, 133, 257, 1056, true);
      check_gemv_swiglu(t, 1, 40, 128);
      check_gemv_swiglu(t, 5, 64, 96);
    }
  }
  if (want("blocks")) run_block_checks();
  if (want("norm")) {
    for (WType t : {WType::F32, WType::F16, WType::BF16}) {
      check_fused_norm(t, 1, 4096, 600);
      check_fused_norm(t, 5, 1024, 300);
    }
    check_rmsnorm_q8(1, 4096);
    check_rmsnorm_q8(3, 1024);
  }
  if (want("topk")) {
    for (int n : {1000, 92544})
      for (int k : {1, 2, 40, 64, 256}) check_top_k(n, k);
    check_top_k(300, 256);
  }
  for (KVType kt : {KVType::F16, KVType::Q8, KVType::Q4, KVType::F32}) {
    if (want("kv")) {
      check_kv_rows(kt, 8, 128);
      check_kv_rows(kt, 2, 16);
      check_rope_store(kt, true, 5, 100, 4, 2, 16);
      check_rope_store(kt, false, 5, 100, 4, 2, 16);
      check_rope_store(kt, true, 3, 7000, 32, 8, 128);
      check_rope_store(kt, false, 1, 30000, 32, 8, 128);
    }
    if (want("attention")) {
      if (flash_supported(128, kt)) {
        for (int hd : {16, 32, 64, 128}) {
          check_attention(kt, 70, 0, 8, 2, hd, true, 1);
          check_attention(kt, 33, 100, 4, 4, hd, true, 1);
        }
        check_attention(kt, 150, 700, 32, 8, 128, true, 1);
      }
      for (int hd : {16, 64, 128, 256}) {
        check_attention(kt, 1, 0, 4, 2, hd, false, 7);
        check_attention(kt, 1, 777, 32, 8, hd, false, 33);
        check_attention(kt, 5, 60, 6, 1, hd, false, 4);
        check_attention(kt, 20, 3, 16, 4, hd, false, 1);
      }
      check_attention(kt, 1, 5000, 32, 8, 128, false, kMaxSplits);
    }
  }
  return failures;
}

// ---------------------------------------------------------------- bench

__global__ void fill_kernel(uint32_t* p, size_t n, uint32_t seed, uint32_t mask, uint32_t bias) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 0x9e3779b1u ^ seed;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    h *= 0x297a2d39u;
    h ^= h >> 15;
    p[i] = (h & mask) | bias;
  }
}

// Random bits that are valid finite fp16 pairs of magnitude < 1 (exponent bits capped), or any bytes.
void fill_random(void* p, size_t bytes, bool halves) {
  fill_kernel<<<1024, 256>>>(static_cast<uint32_t*>(p), bytes / 4, uint32_t(rng()),
                             halves ? 0xb3ffb3ffu : 0xffffffffu, 0);
  check(cudaGetLastError(), "fill");
}

__global__ void read_kernel(const uint4* p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[0] = acc;  // keeps the loads alive
}

template <typename Fn>
double median_ms(int reps, Fn&& fn) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  fn();  // warm-up
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<float> times;
  for (int i = 0; i < reps; i++) {
    check(cudaEventRecord(a), "event");
    fn();
    check(cudaEventRecord(b), "event");
    check(cudaEventSynchronize(b), "event");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "event");
    times.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void bench_result(const std::string& what, const char* unit, double value, double ms) {
  std::printf("{\"kind\":\"bench\",\"what\":\"%s\",\"%s\":%.4g,\"ms\":%.4g}\n", what.c_str(), unit, value, ms);
  std::fflush(stdout);
}

void run_bench() {
  {
    const size_t bytes = size_t(2) << 30;
    DeviceArray<uint8_t> a(bytes, 0, "copy source"), b(bytes, 0, "copy target");
    fill_random(a.get(), bytes, false);
    const double ms = median_ms(10, [&] { check(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice), "copy"); });
    bench_result("copy d2d (read + write)", "gbps", 2.0 * bytes / ms / 1e6, ms);
    DeviceArray<uint32_t> sink(1, 0, "sink");
    const double rms = median_ms(10, [&] {
      read_kernel<<<132 * 16, 256>>>(reinterpret_cast<const uint4*>(a.get()), bytes / 16, sink.get());
    });
    bench_result("read", "gbps", double(bytes) / rms / 1e6, rms);
  }
  // GEMMs of prefill size: 8192 tokens x 8192 x 8192.
  const int M = 8192, N = 8192, K = 8192;
  DeviceArray<uint16_t> x16(size_t(M) * K, 0, "x16");
  DeviceArray<int8_t> xq(size_t(M) * K, 0, "xq");
  DeviceArray<float> xd(size_t(M) * K / 32, 0, "xd"), y(size_t(M) * N, 0, "y");
  fill_random(x16.get(), x16.bytes(), true);
  fill_random(xq.get(), xq.bytes(), false);
  {
    std::vector<float> d(xd.size());
    for (auto& v : d) v = 0.01f;
    check(cudaMemcpy(xd.get(), d.data(), xd.bytes(), cudaMemcpyHostToDevice), "upload");
  }
  for (WType t : {WType::F16, WType::BF16, WType::Q8}) {
    const size_t wbytes = t == WType::Q8 ? size_t(N) * K : size_t(N) * K * 2;
    DeviceArray<uint8_t> w(wbytes, 0, "weights");
    DeviceArray<uint16_t> sc(t == WType::Q8 ? size_t(N) * K / 32 : 0, 0, "scales");
    fill_random(w.get(), wbytes, t != WType::Q8);
    if (t == WType::Q8) fill_random(sc.get(), sc.bytes(), true);
    const DevMatrix m = dense_matrix(t, N, K, w.get(), sc.get());
    const double ms = median_ms(5, [&] { gemm(m, x16.get(), Q8Act{xq.get(), xd.get()}, M, y.get(), N, Epilogue::Store, nullptr); });
    bench_result(std::string("gemm ") + type_name(t) + " 8192^3", "tflops", 2.0 * M * N * double(K) / ms / 1e9, ms);
  }
  // Decode-shaped GEMV: one token through a 28672 x 4096 matrix (InternLM2.5-7B's gate+up).
  {
    const int R = 28672, C = 4096;
    DeviceArray<float> x(C, 0, "x"), out(R, 0, "out");
    fill_random(x.get(), x.bytes(), true);  // fp16 bit patterns read as floats: small, finite
    for (WType t : {WType::F16, WType::Q8}) {
      const size_t wbytes = t == WType::Q8 ? size_t(R) * C : size_t(R) * C * 2;
      DeviceArray<uint8_t> w(wbytes, 0, "weights");
      DeviceArray<uint16_t> sc(t == WType::Q8 ? size_t(R) * C / 32 : 0, 0, "scales");
      fill_random(w.get(), wbytes, t != WType::Q8);
      if (t == WType::Q8) fill_random(sc.get(), sc.bytes(), true);
      const DevMatrix m = dense_matrix(t, R, C, w.get(), sc.get());
      const Q8Act act{xq.get(), xd.get()};
      const double ms = median_ms(50, [&] { gemv(m, x.get(), act, 1, out.get(), R, Epilogue::Store, nullptr); });
      bench_result(std::string("gemv ") + type_name(t) + " 28672x4096", "gbps", (wbytes + sc.bytes()) / ms / 1e6, ms);
    }
    // The low-bit types of the official Q4_K_M file (random bytes: the speed does not depend on them).
    for (BlockType bt : {BlockType::Q4_K, BlockType::Q6_K}) {
      const size_t row_bytes = size_t(C / block_values(bt)) * block_bytes(bt);
      DeviceArray<uint8_t> w(row_bytes * R, 0, "weights");
      fill_random(w.get(), w.bytes(), false);
      DevMatrix m;
      m.type = WType::Blocks;
      m.rows = R;
      m.cols = C;
      m.n_segments = 1;
      m.segments[0] = {bt, 0, R, w.get(), row_bytes};
      const Q8Act act{xq.get(), xd.get()};
      quantize_q8(x.get(), act, 1, C, nullptr);
      const double ms = median_ms(50, [&] { gemv(m, nullptr, act, 1, out.get(), R, Epilogue::Store, nullptr); });
      bench_result(std::string("gemv ") + dtype_name(dtype_of(bt)) + " 28672x4096", "gbps", w.bytes() / ms / 1e6, ms);
    }
  }
  // Decode attention at a long context (the KV read that dominates a step there): one token of
  // InternLM2.5-7B's shape against 131072 keys of one layer, per KV type, with the backend's splits.
  {
    const int keys = 131072, n_heads = 32, n_kv = 8, hd = 128;
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "attribute");
    DeviceArray<float> q(size_t(n_heads) * hd, 0, "q"), out(size_t(n_heads) * hd, 0, "out");
    DeviceArray<float> partial(size_t(n_heads) * kMaxSplits * (hd + 2), 0, "partial");
    DeviceArray<int> counters(n_kv, 0, "counters");
    check(cudaMemset(counters.get(), 0, counters.bytes()), "memset");
    fill_random(q.get(), q.bytes(), true);
    StepParams p{};
    p.start_pos = keys - 1;
    p.n_tokens = 1;
    DeviceArray<uint8_t> dp(sizeof p, 0, "params");
    check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
    const AttentionShape shape{1, n_heads, n_kv, hd};
    for (KVType t : {KVType::F16, KVType::Q8, KVType::Q4}) {
      TestKV kv(t, keys, n_kv, hd);
      kv_fill_random(kv.layer, keys, 7, nullptr);
      const int splits = std::clamp(std::max(1, attention_split_blocks_per_sm(shape, t)) * sms / n_kv, 1, kMaxSplits);
      const double ms = median_ms(20, [&] {
        attention_split(q.get(), kv.layer, reinterpret_cast<const StepParams*>(dp.get()), shape, splits, partial.get(),
                        counters.get(), out.get(), nullptr);
      });
      const double bytes = 2.0 * keys * n_kv * double(kv_row_bytes(t, hd));
      bench_result(std::string("attention decode ") + kv_type_name(t) + " 128K keys splits=" + std::to_string(splits), "gbps",
                   bytes / ms / 1e6, ms);
    }
  }
  // Top-k of a vocabulary-sized row on the device (the decode step's last kernels).
  {
    const int n = 92544;
    DeviceArray<float> logits(n, 0, "logits");
    fill_random(logits.get(), logits.bytes(), true);
    DeviceArray<unsigned long long> scratch(size_t(kTopKBlocks) * kMaxTopK, 0, "scratch");
    DeviceArray<float> values(kMaxTopK, 0, "values");
    DeviceArray<int32_t> ids(kMaxTopK, 0, "ids");
    for (int k : {1, 64}) {
      StepParams p{};
      p.top_k = k;
      DeviceArray<uint8_t> dp(sizeof p, 0, "params");
      check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
      const double ms = median_ms(50, [&] {
        top_k(logits.get(), n, reinterpret_cast<const StepParams*>(dp.get()), scratch.get(), values.get(), ids.get(), nullptr);
      });
      bench_result("top_k 92544 k=" + std::to_string(k), "us", ms * 1000.0, ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  try {
    std::string reason;
    const auto devices = list_devices(&reason);
    if (devices.empty()) {
      std::printf("{\"kind\":\"device\",\"error\":\"%s\"}\n", reason.c_str());
      return 1;
    }
    const DeviceInfo& d = devices.front();
    check(cudaSetDevice(d.index), "cudaSetDevice");
    std::printf("{\"kind\":\"device\",\"name\":\"%s\",\"cc\":\"%d.%d\",\"sms\":%d,\"total_gib\":%.1f,\"free_gib\":%.1f}\n",
                d.name.c_str(), d.cc_major, d.cc_minor, d.sm_count, gib(d.total_bytes), gib(d.free_bytes));
    std::fflush(stdout);
    if (mode == "devices") return 0;  // the device line above is the answer (gpu-check's probe)
    if (mode == "check") return run_checks(argc > 2 ? argv[2] : "") == 0 ? 0 : 1;
    if (mode == "bench") {
      run_bench();
      return 0;
    }
    std::fprintf(stderr, "usage: cuda_bench check|bench|devices\n");
    return 2;
  } catch (const std::exception& e) {
    std::printf("{\"kind\":\"error\",\"message\":\"%s\"}\n", e.what());
    return 1;
  }
}
