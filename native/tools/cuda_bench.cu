// The CUDA backend's kernels on their own, for bench/gpu-check.mjs:
//   cuda_bench check   each kernel against a CPU reference on fresh random inputs (ragged shapes)
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

#include "cuda/cuda_backend.h"
#include "cuda/cuda_util.h"
#include "cuda/kernels.h"
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
  std::printf("{\"kind\":\"check\",\"what\":\"%s\",\"rel_err\":%.3g,\"limit\":%.3g,\"ok\":%s}\n", what.c_str(), rel_err,
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
  }
  m.data = to_device(bytes);
  m.view = {type, rows, cols, m.data.get(), m.scales.get()};
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

// Causal GQA attention of nt query rows at positions start..start+nt-1 against fp16 caches.
void check_attention(int nt, int start, int n_heads, int n_kv, int hd, bool flash, int splits) {
  const int G = n_heads / n_kv, len = start + nt, kv_dim = n_kv * hd;
  std::vector<float> q = normal_values(size_t(nt) * n_heads * hd, 1.0f);
  std::vector<float> kf = normal_values(size_t(len) * kv_dim, 1.0f), vf = normal_values(size_t(len) * kv_dim, 1.0f);
  // Caches one row larger than needed, the extra row NaN: it must never be read.
  std::vector<uint16_t> k16((size_t(len) + 1) * kv_dim, 0x7e00), v16((size_t(len) + 1) * kv_dim, 0x7e00);
  for (size_t i = 0; i < kf.size(); i++) {
    k16[i] = f32_to_fp16(kf[i]);
    v16[i] = f32_to_fp16(vf[i]);
  }
  std::vector<double> ref(q.size());
  for (int t = 0; t < nt; t++)
    for (int h = 0; h < n_heads; h++) {
      const int g = h / G, n_keys = start + t + 1;
      std::vector<double> s(n_keys);
      double mx = -1e300;
      for (int j = 0; j < n_keys; j++) {
        double dot = 0;
        for (int d = 0; d < hd; d++) dot += double(q[(size_t(t) * n_heads + h) * hd + d]) * fp16_to_f32(k16[size_t(j) * kv_dim + g * hd + d]);
        s[j] = dot / std::sqrt(double(hd));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int j = 0; j < n_keys; j++) sum += (s[j] = std::exp(s[j] - mx));
      for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = 0; j < n_keys; j++) o += s[j] * fp16_to_f32(v16[size_t(j) * kv_dim + g * hd + d]);
        ref[(size_t(t) * n_heads + h) * hd + d] = o / sum;
      }
    }
  StepParams p{};
  p.start_pos = start;
  p.n_tokens = nt;
  DeviceArray<uint8_t> dp(sizeof p, 0, "params");
  check(cudaMemcpy(dp.get(), &p, sizeof p, cudaMemcpyHostToDevice), "params");
  auto dq = to_device(q);
  auto dk = to_device(k16);
  auto dv = to_device(v16);
  DeviceArray<float> out(q.size(), 0, "out");
  DeviceArray<float> partial(size_t(nt) * n_heads * splits * (hd + 2), 0, "partial");
  const AttentionShape shape{nt, n_heads, n_kv, hd};
  const auto* params = reinterpret_cast<const StepParams*>(dp.get());
  if (flash)
    attention_flash(dq.get(), dk.get(), dv.get(), params, shape, out.get(), nullptr);
  else
    attention_split(dq.get(), dk.get(), dv.get(), params, shape, splits, partial.get(), out.get(), nullptr);
  check(cudaDeviceSynchronize(), "attention");
  char what[160];
  std::snprintf(what, sizeof what, "attention %s nt=%d start=%d heads=%d/%d hd=%d splits=%d", flash ? "flash" : "split",
                nt, start, n_heads, n_kv, hd, splits);
  report_check(what, rel_error(to_host(out), ref), flash ? 5e-3 : 1e-5);
}

int run_checks() {
  check_quantize();
  for (WType t : {WType::F32, WType::F16, WType::BF16, WType::Q8}) {
    for (int nt : {1, 3, 8}) check_matmul(t, nt, 37, 96, false);
    check_matmul(t, 1, 300, 4096, false);
    check_matmul(t, 9, 200, 320, true);
    check_matmul(t, 133, 257, 1056, true);
    check_gemv_swiglu(t, 1, 40, 128);
    check_gemv_swiglu(t, 5, 64, 96);
  }
  for (int hd : {16, 32, 64, 128}) {
    check_attention(70, 0, 8, 2, hd, true, 1);
    check_attention(33, 100, 4, 4, hd, true, 1);
  }
  check_attention(150, 700, 32, 8, 128, true, 1);
  for (int hd : {16, 64, 128, 256}) {
    check_attention(1, 0, 4, 2, hd, false, 7);
    check_attention(1, 777, 32, 8, hd, false, 33);
    check_attention(5, 60, 6, 1, hd, false, 4);
    check_attention(20, 3, 16, 4, hd, false, 1);
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
    const DevMatrix m{t, N, K, w.get(), sc.get()};
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
      const DevMatrix m{t, R, C, w.get(), sc.get()};
      const Q8Act act{xq.get(), xd.get()};
      const double ms = median_ms(50, [&] { gemv(m, x.get(), act, 1, out.get(), R, Epilogue::Store, nullptr); });
      bench_result(std::string("gemv ") + type_name(t) + " 28672x4096", "gbps", (wbytes + sc.bytes()) / ms / 1e6, ms);
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
    if (mode == "check") return run_checks() == 0 ? 0 : 1;
    if (mode == "bench") {
      run_bench();
      return 0;
    }
    std::fprintf(stderr, "usage: cuda_bench check|bench\n");
    return 2;
  } catch (const std::exception& e) {
    std::printf("{\"kind\":\"error\",\"message\":\"%s\"}\n", e.what());
    return 1;
  }
}
