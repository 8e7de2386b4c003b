// Writes a random InternLM2 GGUF of any shape, fast enough for full-size benchmark models
// (InternLM2.5-7B's 15 GB F16 in seconds): all threads generate and pwrite chunks in parallel.
// The weights are uniform with the variance of make-model.mjs's normals (embeddings 1, matrices
// 1/cols, norms 1 +- 0.1), the vocabulary is synthetic (specials, 256 bytes, "tN" pieces).
//
// q4_k_m: llama.cpp's Q4_K_M mix (Q4_K; Q6_K for the output head and, in its "more bits"
// layers, attn_v and ffn_down) of valid random blocks (random scales and quants).
//
//   make_random_gguf --out FILE [--type f16|bf16|f32|q8_0|q4_k_m] [--dim 4096] [--layers 32] [--heads 32]
//                    [--kv-heads 8] [--ffn 14336] [--vocab 92544] [--context 32768] [--seed N]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "util/half.h"

namespace {

enum GgufType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
enum GgmlType : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ8_0 = 8, kGgmlQ4_K = 12, kGgmlQ6_K = 14, kGgmlBF16 = 30 };
constexpr uint32_t kQ4KMix = 1000;  // --type q4_k_m: per tensor Q4_K or Q6_K
constexpr uint64_t kAlign = 32;

struct Header {
  std::vector<uint8_t> bytes;
  void raw(const void* p, size_t n) { bytes.insert(bytes.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
  template <typename T>
  void put(T v) { raw(&v, sizeof v); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void key(const std::string& k, uint32_t type) {
    str(k);
    put<uint32_t>(type);
  }
  void kv_u32(const std::string& k, uint32_t v) { key(k, kU32), put(v); }
  void kv_f32(const std::string& k, float v) { key(k, kF32), put(v); }
  void kv_bool(const std::string& k, bool v) { key(k, kBool), put<uint8_t>(v ? 1 : 0); }
  void kv_str(const std::string& k, const std::string& v) { key(k, kString), str(v); }
};

struct TensorSpec {
  std::string name;
  int64_t cols, rows;  // rows == 0: a 1-D vector of cols values
  uint32_t type;
  float stddev, mean;
  uint64_t offset = 0, bytes = 0;
};

uint64_t row_bytes(uint32_t type, int64_t n) {
  switch (type) {
    case kGgmlF32: return uint64_t(n) * 4;
    case kGgmlF16:
    case kGgmlBF16: return uint64_t(n) * 2;
    case kGgmlQ4_K: return uint64_t(n / 256) * 144;
    case kGgmlQ6_K: return uint64_t(n / 256) * 210;
    default: return uint64_t(n / 32) * 34;
  }
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform on [-1, 1) from 24 random bits.
float unit(uint64_t& s) { return float(int64_t(splitmix(s) >> 40) - (1 << 23)) / float(1 << 23); }

// Fills `out` with `count` elements (count a multiple of 32 for Q8_0) of tensor t, chunk `seed`.
void generate(const TensorSpec& t, uint64_t seed, int64_t count, uint8_t* out) {
  const float a = t.stddev * std::sqrt(3.0f);  // uniform on [-a, a] has this standard deviation
  uint64_t s = seed;
  switch (t.type) {
    case kGgmlF32:
      for (int64_t i = 0; i < count; i++) {
        const float v = t.mean + a * unit(s);
        std::memcpy(out + 4 * i, &v, 4);
      }
      break;
    case kGgmlF16:
    case kGgmlBF16:
      for (int64_t i = 0; i < count; i++) {
        const float v = t.mean + a * unit(s);
        const uint16_t h = t.type == kGgmlF16 ? ilm::f32_to_fp16(v) : ilm::f32_to_bf16(v);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case kGgmlQ4_K:  // w = d * sc * q - dmin * m, q in 0..15, sc and m 6-bit
      for (int64_t b = 0; b < count / 256; b++) {
        uint8_t* blk = out + 144 * b;
        const uint16_t d = ilm::f32_to_fp16(2 * a / (15 * 63)), dmin = ilm::f32_to_fp16(a / 63);
        std::memcpy(blk, &d, 2);
        std::memcpy(blk + 2, &dmin, 2);
        for (int k = 4; k < 144; k++) blk[k] = uint8_t(splitmix(s));
      }
      break;
    case kGgmlQ6_K:  // w = d * scale * (q - 32), q in 0..63, int8 scales
      for (int64_t b = 0; b < count / 256; b++) {
        uint8_t* blk = out + 210 * b;
        for (int k = 0; k < 192; k++) blk[k] = uint8_t(splitmix(s));
        for (int k = 192; k < 208; k++) blk[k] = uint8_t(int8_t(int(splitmix(s) % 63) - 31));
        const uint16_t d = ilm::f32_to_fp16(a / (32 * 31));
        std::memcpy(blk + 208, &d, 2);
      }
      break;
    default:
      for (int64_t b = 0; b < count / 32; b++) {
        const uint16_t d = ilm::f32_to_fp16(a / 127.0f);
        uint8_t* blk = out + 34 * b;
        std::memcpy(blk, &d, 2);
        for (int k = 0; k < 32; k++) blk[2 + k] = uint8_t(int8_t(int(splitmix(s) % 255) - 127));
      }
  }
}

std::map<std::string, std::string> parse_args(int argc, char** argv) {
  std::map<std::string, std::string> o;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) throw std::runtime_error(std::string("unexpected argument ") + argv[i]);
    o[argv[i] + 2] = argv[i + 1];
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = parse_args(argc, argv);
    auto num = [&](const char* k, int64_t fallback) { return o.count(k) ? std::stoll(o[k]) : fallback; };
    if (!o.count("out")) throw std::runtime_error("usage: make_random_gguf --out FILE [--type f16|bf16|f32|q8_0] [--dim N] ...");
    const std::string type_name = o.count("type") ? o["type"] : "f16";
    const std::map<std::string, uint32_t> types{
        {"f32", kGgmlF32}, {"f16", kGgmlF16}, {"bf16", kGgmlBF16}, {"q8_0", kGgmlQ8_0}, {"q4_k_m", kQ4KMix}};
    if (!types.count(type_name)) throw std::runtime_error("unknown --type " + type_name);
    const uint32_t wtype = types.at(type_name);
    const int64_t dim = num("dim", 4096), layers = num("layers", 32), heads = num("heads", 32);
    const int64_t kv_heads = num("kv-heads", 8), ffn = num("ffn", 14336), vocab = num("vocab", 92544);
    const int64_t context = num("context", 32768), seed = num("seed", 1);
    const int64_t hd = dim / heads;
    if (dim % heads || heads % kv_heads || dim % 32 || ffn % 32 || vocab < 300)
      throw std::runtime_error("inconsistent shape (dim % heads, heads % kv-heads, multiples of 32, vocab >= 300)");
    if (wtype == kQ4KMix && (dim % 256 || ffn % 256)) throw std::runtime_error("q4_k_m needs dim and ffn multiples of 256");

    // llama.cpp's Q4_K_M: Q6_K for the head, and for attn_v / ffn_down in its "more bits" layers
    // (the first and last eighth, every third between), as quant/quantize_model.cpp's tensor_type
    // decides for real files (this benchmark generator stays independent of the quantizer).
    auto more_bits = [&](int64_t l) { return l < layers / 8 || l >= 7 * layers / 8 || (l - layers / 8) % 3 == 2; };
    int64_t layer = -1;
    std::vector<TensorSpec> tensors;
    auto matrix = [&](const std::string& name, int64_t cols, int64_t rows, float stddev) {
      uint32_t type = wtype;
      if (wtype == kQ4KMix) {
        const bool v_or_down = name.find("attn_v") != std::string::npos || name.find("ffn_down") != std::string::npos;
        type = name == "output.weight" || (v_or_down && more_bits(layer)) ? kGgmlQ6_K : kGgmlQ4_K;
      }
      tensors.push_back({name, cols, rows, type, stddev, 0.0f});
    };
    auto norm = [&](const std::string& name) { tensors.push_back({name, dim, 0, kGgmlF32, 0.1f, 1.0f}); };
    matrix("token_embd.weight", dim, vocab, 1.0f);
    for (int64_t l = 0; l < layers; l++) {
      layer = l;
      const std::string b = "blk." + std::to_string(l) + ".";
      const float in_dim = 1.0f / std::sqrt(float(dim)), in_ffn = 1.0f / std::sqrt(float(ffn));
      norm(b + "attn_norm.weight");
      matrix(b + "attn_q.weight", dim, heads * hd, in_dim);
      matrix(b + "attn_k.weight", dim, kv_heads * hd, in_dim);
      matrix(b + "attn_v.weight", dim, kv_heads * hd, in_dim);
      matrix(b + "attn_output.weight", heads * hd, dim, 1.0f / std::sqrt(float(heads * hd)));
      norm(b + "ffn_norm.weight");
      matrix(b + "ffn_gate.weight", dim, ffn, in_dim);
      matrix(b + "ffn_up.weight", dim, ffn, in_dim);
      matrix(b + "ffn_down.weight", ffn, dim, in_ffn);
    }
    norm("output_norm.weight");
    matrix("output.weight", dim, vocab, 1.0f / std::sqrt(float(dim)));

    Header h;
    h.raw("GGUF", 4);
    h.put<uint32_t>(3);
    h.put<uint64_t>(tensors.size());
    const uint64_t n_kv_pos = h.bytes.size();
    h.put<uint64_t>(0);  // patched below
    uint64_t n_kv = 0;
    auto counted = [&](auto fn) { fn(), n_kv++; };
    counted([&] { h.kv_str("general.architecture", "internlm2"); });
    counted([&] { h.kv_str("general.name", "random-internlm2-" + std::to_string(dim) + "x" + std::to_string(layers)); });
    counted([&] { h.kv_u32("general.file_type", wtype == kGgmlQ8_0 ? 7 : wtype == kGgmlBF16 ? 32 : wtype == kQ4KMix ? 15 : wtype); });
    counted([&] { h.kv_u32("internlm2.context_length", uint32_t(context)); });
    counted([&] { h.kv_u32("internlm2.embedding_length", uint32_t(dim)); });
    counted([&] { h.kv_u32("internlm2.block_count", uint32_t(layers)); });
    counted([&] { h.kv_u32("internlm2.feed_forward_length", uint32_t(ffn)); });
    counted([&] { h.kv_f32("internlm2.rope.freq_base", 1e6f); });
    counted([&] { h.kv_u32("internlm2.attention.head_count", uint32_t(heads)); });
    counted([&] { h.kv_u32("internlm2.attention.head_count_kv", uint32_t(kv_heads)); });
    counted([&] { h.kv_f32("internlm2.attention.layer_norm_rms_epsilon", 1e-5f); });
    counted([&] { h.kv_str("tokenizer.ggml.model", "llama"); });
    // Pieces: <unk> <s> </s>, <0x00>..<0xFF>, then unique filler pieces.
    std::vector<std::string> pieces{"<unk>", "<s>", "</s>"};
    std::vector<int32_t> kinds{2, 3, 3};
    for (int b = 0; b < 256; b++) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      pieces.push_back(buf);
      kinds.push_back(6);
    }
    while (int64_t(pieces.size()) < vocab) {
      pieces.push_back("t" + std::to_string(pieces.size()));
      kinds.push_back(1);
    }
    counted([&] {
      h.key("tokenizer.ggml.tokens", kArray);
      h.put<uint32_t>(kString);
      h.put<uint64_t>(pieces.size());
      for (const auto& p : pieces) h.str(p);
    });
    counted([&] {
      h.key("tokenizer.ggml.scores", kArray);
      h.put<uint32_t>(kF32);
      h.put<uint64_t>(pieces.size());
      for (size_t i = 0; i < pieces.size(); i++) h.put<float>(-float(i));
    });
    counted([&] {
      h.key("tokenizer.ggml.token_type", kArray);
      h.put<uint32_t>(kI32);
      h.put<uint64_t>(kinds.size());
      for (int32_t k : kinds) h.put<int32_t>(k);
    });
    counted([&] { h.kv_bool("tokenizer.ggml.add_space_prefix", false); });
    counted([&] { h.kv_u32("tokenizer.ggml.bos_token_id", 1); });
    counted([&] { h.kv_u32("tokenizer.ggml.eos_token_id", 2); });
    counted([&] { h.kv_u32("tokenizer.ggml.unknown_token_id", 0); });
    counted([&] { h.kv_bool("tokenizer.ggml.add_bos_token", true); });
    std::memcpy(h.bytes.data() + n_kv_pos, &n_kv, 8);

    uint64_t offset = 0;
    for (auto& t : tensors) {
      t.bytes = row_bytes(t.type, t.cols) * uint64_t(std::max<int64_t>(t.rows, 1));
      t.offset = offset;
      offset += (t.bytes + kAlign - 1) / kAlign * kAlign;
      h.str(t.name);
      h.put<uint32_t>(t.rows ? 2 : 1);
      h.put<uint64_t>(t.cols);
      if (t.rows) h.put<uint64_t>(t.rows);
      h.put<uint32_t>(t.type);
      h.put<uint64_t>(t.offset);
    }
    const uint64_t data_start = (h.bytes.size() + kAlign - 1) / kAlign * kAlign;
    h.bytes.resize(data_start, 0);
    const uint64_t total = data_start + offset;

    const std::string path = o["out"];
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
    if (::ftruncate(fd, off_t(total)) != 0) throw std::runtime_error("cannot size " + path + ": " + std::strerror(errno));
    if (::pwrite(fd, h.bytes.data(), h.bytes.size(), 0) != ssize_t(h.bytes.size())) throw std::runtime_error("write failed");

    // Work items: (tensor, chunk of 1M elements); threads take them in order.
    constexpr int64_t kChunk = 1 << 20;
    struct Item { size_t tensor; int64_t first, count; };
    std::vector<Item> items;
    for (size_t i = 0; i < tensors.size(); i++) {
      const int64_t n = tensors[i].cols * std::max<int64_t>(tensors[i].rows, 1);
      for (int64_t f = 0; f < n; f += kChunk) items.push_back({i, f, std::min(kChunk, n - f)});
    }
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    const unsigned n_threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < n_threads; w++)
      pool.emplace_back([&] {
        std::vector<uint8_t> buf;
        for (size_t i; (i = next++) < items.size() && !failed;) {
          const Item& it = items[i];
          const TensorSpec& t = tensors[it.tensor];
          const uint64_t bytes = row_bytes(t.type, it.count), at = data_start + t.offset + row_bytes(t.type, it.first);
          buf.resize(bytes);
          generate(t, uint64_t(seed) * 0x100000001b3ull ^ (uint64_t(it.tensor) << 32) ^ uint64_t(it.first), it.count, buf.data());
          if (::pwrite(fd, buf.data(), bytes, off_t(at)) != ssize_t(bytes)) failed = true;
        }
      });
    for (auto& t : pool) t.join();
    ::close(fd);
    if (failed) throw std::runtime_error("writing " + path + " failed (disk full?)");
    std::printf("%s\t%.2f GB\n", path.c_str(), double(total) / 1e9);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_random_gguf: %s\n", e.what());
    return 1;
  }
}
