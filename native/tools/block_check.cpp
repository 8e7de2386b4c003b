// Holds the CUDA backend's weight decoders (cuda/quant_blocks.h: unpack_group, group_weight) to
// the CPU's dequantization (quant/reference.cpp: dequantize_row), bit for bit, on any machine: the
// header is plain C++ on the host, so no GPU is needed. For each of Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
// Q3_K, Q4_K, Q5_K and Q6_K, every group of 32 weights of
//   - rows our quantizer writes (quant::quantize_row) from seeded random floats of several kinds
//     (gaussian, uniform, one-signed, outliers, all-equal, zeros, magnitudes whose scales are fp16
//     subnormals, huge ones whose scales overflow, per-group mixtures), 256..4096 values a row, and
//   - rows of arbitrary bytes (random, constant fills, and fp16 scale fields set to zeros, -0,
//     subnormals, the largest finite, infinities and NaNs), since the decoders must agree with the
//     CPU on every file, not only on what our quantizer writes,
// must decode to codes in the type's range and to weights float-equal (== ; -0 equals +0; NaN
// equals NaN) to the CPU's. One JSON line per type:
//   {"type":"Q4_K","groups":N,"mismatches":M,"first":"..."}  (mismatches: bad weights; first: the
// first one described, null when none); exit status 1 on any mismatch, 2 on bad arguments.
// --break TYPE flips bit 0 of one code of every group the decoder produces for TYPE, proving the
// comparison catches a one-bit error (test/engine/gpu-blocks.test.mjs). --seed N varies the data.
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/quant_blocks.h"
#include "model/tensor.h"
#include "quant/blocks.h"
#include "quant/reference.h"

using namespace ilm;
using cuda::BlockType;

namespace {

struct TypeInfo {
  BlockType block;
  DType dtype;
  const char* name;
  int lo, hi;           // the range of the codes (levels less the type's bias)
  size_t f16_at[2];     // offsets of the fp16 fields (scale, and min where there is one) in a block
  int f16_fields;
};

const TypeInfo kTypes[] = {
    {BlockType::Q4_0, DType::Q4_0, "Q4_0", -8, 7, {offsetof(quant::BlockQ4_0, d), 0}, 1},
    {BlockType::Q4_1, DType::Q4_1, "Q4_1", 0, 15, {offsetof(quant::BlockQ4_1, d), offsetof(quant::BlockQ4_1, m)}, 2},
    {BlockType::Q5_0, DType::Q5_0, "Q5_0", -16, 15, {offsetof(quant::BlockQ5_0, d), 0}, 1},
    {BlockType::Q5_1, DType::Q5_1, "Q5_1", 0, 31, {offsetof(quant::BlockQ5_1, d), offsetof(quant::BlockQ5_1, m)}, 2},
    {BlockType::Q2_K, DType::Q2_K, "Q2_K", 0, 3, {offsetof(quant::BlockQ2_K, d), offsetof(quant::BlockQ2_K, dmin)}, 2},
    {BlockType::Q3_K, DType::Q3_K, "Q3_K", -4, 3, {offsetof(quant::BlockQ3_K, d), 0}, 1},
    {BlockType::Q4_K, DType::Q4_K, "Q4_K", 0, 15, {offsetof(quant::BlockQ4_K, d), offsetof(quant::BlockQ4_K, dmin)}, 2},
    {BlockType::Q5_K, DType::Q5_K, "Q5_K", 0, 31, {offsetof(quant::BlockQ5_K, d), offsetof(quant::BlockQ5_K, dmin)}, 2},
    {BlockType::Q6_K, DType::Q6_K, "Q6_K", -32, 31, {offsetof(quant::BlockQ6_K, d), 0}, 1},
};
static_assert(sizeof(kTypes) / sizeof(kTypes[0]) == cuda::kBlockTypes, "one entry per decoder");

// fp16 bit patterns worth a scale field: zeros, subnormals, the normal extremes, infinities, NaNs.
const uint16_t kSpecialHalves[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x0200, 0x03ff, 0x83ff, 0x0400, 0x8400,
                                   0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01,
                                   0x7dff, 0xffff};

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

bool same_value(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

struct Tally {
  int64_t groups = 0, weights = 0, mismatches = 0;
  std::string first;
};

// Compares every group of one row (n values of type t at row) with dequantize_row's output.
void check_row(const TypeInfo& t, const uint8_t* row, int64_t n, const std::string& where, bool broken, Tally& tally) {
  std::vector<float> expect(static_cast<size_t>(n));
  quant::dequantize_row(t.dtype, row, expect.data(), n);
  for (int g = 0; g < int(n / 32); g++) {
    cuda::Group32 G;
    std::memset(&G, 0xA5, sizeof G);  // a field the decoder forgets to set shows as garbage
    cuda::unpack_group(t.block, row, g, G);
    if (broken) G.codes[(g % 32) / 4] ^= 1u << (8 * (g % 4));  // bit 0 of code g % 32
    tally.groups++;
    for (int i = 0; i < 32; i++) {
      tally.weights++;
      const int code = cuda::group_code(G, i);
      const float got = cuda::group_weight(G, i), want = expect[size_t(32 * g + i)];
      const bool in_range = code >= t.lo && code <= t.hi;
      if (in_range && same_value(got, want)) continue;
      if (tally.mismatches++ == 0) {
        const int per_block = cuda::block_values(t.block) / 32;  // groups per block
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      "%s group %d weight %d (row element %d; block %d, its weight %d): code %d%s, scale %.9g, "
                      "offset %.9g: expected %.9g (0x%08" PRIx32 ") got %.9g (0x%08" PRIx32 ")",
                      where.c_str(), g, i, 32 * g + i, g / per_block, 32 * (g % per_block) + i, code,
                      in_range ? "" : " OUT OF RANGE", double(G.scale[i / 16]), double(G.offset[i / 16]),
                      double(want), float_bits(want), double(got), float_bits(got));
        tally.first = buf;
      }
    }
  }
}

// ---------------------------------------------------------------- rows our quantizer writes

enum Kind { kGauss, kUniform, kPositive, kNegative, kOutliers, kEqual, kZeros, kTiny, kHuge, kMixed, kKinds };
const char* const kKindNames[kKinds] = {"gaussian", "uniform",   "positive", "negative", "outliers",
                                        "all-equal", "zeros",    "tiny",     "huge",     "mixed"};

void fill(Kind kind, std::mt19937& rng, float* x, int n) {
  auto uni = [&](float a, float b) { return std::uniform_real_distribution<float>(a, b)(rng); };
  auto gauss = [&](float s) { return std::normal_distribution<float>(0.0f, s)(rng); };
  const float sigmas[] = {0.02f, 1.0f, 30.0f};
  switch (kind) {
    case kGauss: {
      const float s = sigmas[rng() % 3];
      for (int k = 0; k < n; k++) x[k] = gauss(s);
      return;
    }
    case kUniform:
      for (int k = 0; k < n; k++) x[k] = uni(-1.0f, 1.0f);
      return;
    case kPositive:
      for (int k = 0; k < n; k++) x[k] = uni(0.5f, 2.0f);
      return;
    case kNegative:
      for (int k = 0; k < n; k++) x[k] = uni(-2.0f, -0.5f);
      return;
    case kOutliers:
      for (int k = 0; k < n; k++) x[k] = gauss(0.05f) * (rng() % 64 == 0 ? 100.0f : 1.0f);
      return;
    case kEqual: {
      const float v = rng() % 2 ? uni(-3.0f, 3.0f) : gauss(1e-3f);
      for (int k = 0; k < n; k++) x[k] = v;
      return;
    }
    case kZeros:
      for (int k = 0; k < n; k++) x[k] = 0.0f;
      return;
    case kTiny: {  // scales of about 1e-8..1e-6: fp16 subnormals (below 6.1e-5) or flushed to zero
      const float s = std::pow(10.0f, uni(-8.0f, -4.0f));
      for (int k = 0; k < n; k++) x[k] = gauss(s);
      return;
    }
    case kHuge: {  // scales near and past fp16's largest finite (65504): infinities, NaN weights
      const float s = std::pow(10.0f, uni(4.0f, 7.0f));
      for (int k = 0; k < n; k++) x[k] = gauss(s);
      return;
    }
    case kMixed:  // each 32 values from another kind: sub-blocks of very different scales
      for (int k = 0; k < n; k += 32) fill(Kind(rng() % kMixed), rng, x + k, 32);
      return;
    default: return;
  }
}

void check_quantized(const TypeInfo& t, std::mt19937& rng, bool broken, Tally& tally) {
  constexpr int64_t kValuesPerKind = 64 * 1024;  // 256 K-quant super-blocks, 2048 legacy blocks
  std::vector<float> x;
  std::vector<uint8_t> bytes;
  for (int kind = 0; kind < kKinds; kind++) {
    int64_t done = 0;
    for (int r = 0; done < kValuesPerKind; r++) {
      const int n = 256 * (1 + int(rng() % 16));
      x.resize(size_t(n));
      fill(Kind(kind), rng, x.data(), n);
      bytes.assign(dtype_row_bytes(t.dtype, n), 0);
      quant::quantize_row(t.dtype, x.data(), bytes.data(), n);
      check_row(t, bytes.data(), n, std::string("quantized ") + kKindNames[kind] + " row " + std::to_string(r) +
                                        " (n " + std::to_string(n) + ")", broken, tally);
      done += n;
    }
  }
}

// ---------------------------------------------------------------- arbitrary bytes

void check_raw(const TypeInfo& t, std::mt19937& rng, bool broken, Tally& tally) {
  constexpr int kRows = 256, kValues = 2048;  // 2048 K-quant super-blocks, 16384 legacy blocks
  const int bb = cuda::block_bytes(t.block), nb = kValues / cuda::block_values(t.block);
  std::vector<uint8_t> bytes(dtype_row_bytes(t.dtype, kValues));
  for (int r = 0; r < kRows; r++) {
    for (int b = 0; b < nb; b++) {
      uint8_t* p = bytes.data() + size_t(b) * bb;
      switch (rng() % 16) {
        case 0: std::memset(p, 0xFF, size_t(bb)); break;
        case 1: std::memset(p, 0x00, size_t(bb)); break;
        case 2: std::memset(p, 0x55, size_t(bb)); break;
        case 3: std::memset(p, 0xAA, size_t(bb)); break;
        default:
          for (int k = 0; k < bb; k++) p[k] = uint8_t(rng());
      }
      for (int f = 0; f < t.f16_fields; f++) {
        if (rng() % 2) continue;  // else a special pattern; random bytes reach them too, rarely
        const uint16_t h = kSpecialHalves[rng() % (sizeof(kSpecialHalves) / sizeof(kSpecialHalves[0]))];
        p[t.f16_at[f]] = uint8_t(h & 0xFF);
        p[t.f16_at[f] + 1] = uint8_t(h >> 8);
      }
    }
    check_row(t, bytes.data(), kValues, "raw row " + std::to_string(r), broken, tally);
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  const char* broken_type = nullptr;
  uint32_t seed = 1;
  for (int a = 1; a < argc; a++) {
    const std::string arg = argv[a];
    if (arg == "--break" && a + 1 < argc) {
      broken_type = argv[++a];
    } else if (arg == "--seed" && a + 1 < argc) {
      seed = uint32_t(std::strtoul(argv[++a], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: block_check [--seed N] [--break TYPE]\n");
      return 2;
    }
  }
  if (broken_type) {
    bool known = false;
    for (const TypeInfo& t : kTypes) known = known || std::strcmp(t.name, broken_type) == 0;
    if (!known) {
      std::fprintf(stderr, "block_check: --break %s: not one of the decoded types\n", broken_type);
      return 2;
    }
  }
  int64_t total = 0;
  for (const TypeInfo& t : kTypes) {
    const bool broken = broken_type && std::strcmp(t.name, broken_type) == 0;
    std::mt19937 rng(seed * 1000003u + uint32_t(t.dtype));
    Tally quantized, raw;
    check_quantized(t, rng, broken, quantized);
    check_raw(t, rng, broken, raw);
    const int64_t mismatches = quantized.mismatches + raw.mismatches;
    const std::string& first = quantized.mismatches ? quantized.first : raw.first;
    std::printf("{\"type\":\"%s\",\"groups\":%" PRId64 ",\"mismatches\":%" PRId64
                ",\"first\":%s,\"quantized_groups\":%" PRId64 ",\"quantized_mismatches\":%" PRId64
                ",\"raw_groups\":%" PRId64 ",\"raw_mismatches\":%" PRId64 "%s}\n",
                t.name, quantized.groups + raw.groups, mismatches, mismatches ? json_string(first).c_str() : "null",
                quantized.groups, quantized.mismatches, raw.groups, raw.mismatches, broken ? ",\"broken\":true" : "");
    total += mismatches;
  }
  std::fflush(stdout);
  return total ? 1 : 0;
}
