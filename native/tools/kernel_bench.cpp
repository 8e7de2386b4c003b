// Times one GEMM kernel on random weights: `kernel_bench TYPE ROWS COLS TOKENS [REPS] [ISA]`, e.g.
// `kernel_bench Q4_K 2816 1024 1` (decode) or `... 256` (prefill). Weights larger than the caches
// are streamed from memory as in decode; reports the median CPU time of the thread (time-sharing
// with other processes does not count), GB/s of weights and GMAC/s.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "quant/reference.h"

using namespace ilm;
using namespace ilm::cpu;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: kernel_bench TYPE ROWS COLS TOKENS [REPS] [generic|avx2|avx512]\n");
    return 2;
  }
  DType type;
  if (!dtype_from_name(argv[1], &type) || !dtype_supported(type)) {
    std::fprintf(stderr, "unknown weight type %s\n", argv[1]);
    return 2;
  }
  const int rows = std::atoi(argv[2]), cols = std::atoi(argv[3]), nt = std::atoi(argv[4]);
  const int reps = argc > 5 ? std::atoi(argv[5]) : 20;
  const std::string isa = argc > 6 ? argv[6] : "";
  const KernelTable* table = &kernels();
  if (isa == "generic") table = &generic_kernels();
  if (isa == "avx2" && cpu_has_avx2()) table = avx2_kernels();
  if (isa == "avx512" && cpu_has_avx512()) table = avx512_kernels();
  const WeightKernel wk = weight_kernel(*table, type);

  // Enough copies of the matrix that one pass overflows the caches, as a model's layers do.
  const size_t ldw = dtype_row_bytes(type, cols), matrix = ldw * size_t(rows);
  const int copies = int(std::max<size_t>(1, (size_t(256) << 20) / matrix));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> row(cols);
  std::vector<uint8_t> W(matrix * copies);
  for (int r = 0; r < rows; r++) {
    for (auto& v : row) v = normal(rng);
    quant::quantize_row(type, row.data(), W.data() + size_t(r) * ldw, cols);
  }
  for (int c = 1; c < copies; c++) std::memcpy(W.data() + c * matrix, W.data(), matrix);
  const size_t ldx = act_row_bytes(wk.act, cols);
  // Activation rows start on cache lines, as in the forward pass.
  std::vector<uint8_t> X_storage(ldx * nt + 64);
  uint8_t* X = X_storage.data() + (64 - reinterpret_cast<uintptr_t>(X_storage.data()) % 64) % 64;
  std::vector<float> xf(cols);
  for (int t = 0; t < nt; t++) {
    for (auto& v : xf) v = normal(rng);
    quantize_activation(*table, wk.act, xf.data(), X + t * ldx, cols);
  }
  std::vector<float> Y(size_t(nt) * rows);
  // The forward pass calls tiles of 16 rows x 32 activations.
  auto run = [&](const uint8_t* w) {
    for (int r0 = 0; r0 < rows; r0 += 16)
      for (int t0 = 0; t0 < nt; t0 += 32)
        wk.gemm(w + size_t(r0) * ldw, ldw, X + t0 * ldx, ldx, Y.data() + size_t(t0) * rows + r0, rows,
                std::min(16, rows - r0), std::min(32, nt - t0), cols);
  };
  auto cpu_seconds = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  std::vector<double> times;
  for (int i = 0; i < reps; i++) {
    const double start = cpu_seconds();
    run(W.data() + (i % copies) * matrix);
    times.push_back(cpu_seconds() - start);
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  std::printf("%s %s %dx%d x %d tokens: %.3f ms, %.1f GB/s weights, %.1f GMAC/s (min %.3f ms)\n", table->isa,
              dtype_name(type), rows, cols, nt, t * 1e3, double(matrix) / t / 1e9,
              double(rows) * cols * nt / t / 1e9, times[0] * 1e3);
  return 0;
}
