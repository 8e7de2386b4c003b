// The InternLM2 forward pass on the CPU (REFERENCE.md "Layer math"): pre-norm residual blocks
// of GQA attention and SwiGLU, f32 activations, weights read in their file type.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/kv_kernels.h"
#include "cpu/thread_pool.h"
#include "engine/backend.h"
#include "engine/fair_mutex.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace ilm {
namespace {

using cpu::kernels;
using cpu::ThreadPool;

// K (after RoPE) and V per layer, laid out [position][kv_head][head_dim] in the session's KV type
// (f32 as plain floats; others as kv_type.h rows).
class CpuKVCache final : public KVCache {
 public:
  CpuKVCache(const ModelConfig& c, int capacity, KVType type)
      : type_(type), head_bytes_(kv_row_bytes(type, c.head_dim)), row_(size_t(c.n_kv_heads) * head_bytes_),
        k_(c.n_layers), v_(c.n_layers) {
    if (type != KVType::F32 && c.head_dim > cpu::kMaxKVHeadDim)
      throw Error("head_dim " + std::to_string(c.head_dim) + " is too large for a quantized KV cache");
    reserve(capacity);
  }
  int capacity() const override { return capacity_; }
  void reserve(int n) override {
    if (n <= capacity_) return;
    const int grown = std::max(n, std::min(capacity_ + capacity_ / 2, growth_limit()));
    try {
      for (auto* layers : {&k_, &v_})
        for (auto& buf : *layers) buf.resize(size_t(grown) * row_);
    } catch (const std::bad_alloc&) {
      throw Error("out of memory: the KV cache for " + std::to_string(grown) + " positions (" +
                  std::to_string(bytes_for(grown) >> 20) + " MiB) does not fit in RAM; use a shorter context");
    }
    capacity_ = grown;
  }
  KVType type() const override { return type_; }
  size_t position_bytes() const override { return row_; }
  void read_rows(int layer, bool value, int from, int n, void* dst) const override {
    const auto& buf = (value ? v_ : k_)[layer];
    std::memcpy(dst, buf.data() + size_t(from) * row_, size_t(n) * row_);
  }
  void write_rows(int layer, bool value, int from, int n, const void* src) override {
    auto& buf = (value ? v_ : k_)[layer];
    std::memcpy(buf.data() + size_t(from) * row_, src, size_t(n) * row_);
  }
  size_t head_bytes() const { return head_bytes_; }
  size_t row_bytes() const { return row_; }
  float* k(int layer, int pos) { return reinterpret_cast<float*>(k_row(layer, pos)); }
  float* v(int layer, int pos) { return reinterpret_cast<float*>(v_row(layer, pos)); }
  uint8_t* k_row(int layer, int pos) { return k_[layer].data() + size_t(pos) * row_; }
  uint8_t* v_row(int layer, int pos) { return v_[layer].data() + size_t(pos) * row_; }
  size_t bytes_for(int n) const { return size_t(n) * row_ * 2 * k_.size(); }

 private:
  KVType type_;
  size_t head_bytes_, row_;
  int capacity_ = 0;
  std::vector<std::vector<uint8_t>> k_, v_;  // operator new's alignment suits the f32 rows
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Model& model, int threads) : model_(model), c_(model.config), pool_(std::make_unique<ThreadPool>(threads)) {
    check_weights();
    prefault_weights();
    // Scratch for a full batch now, at load (as llama.cpp reserves its compute buffers): growing it
    // inside the first prompt cost that prefill 12% in zeroing and page faults.
    prepare_scratch(max_batch());
    act_.resize(cpu::act_row_bytes(cpu::ActFormat::F32, std::max(c_.dim, c_.ffn_dim)) * max_batch() + 64);
  }

  std::string name() const override { return "cpu"; }
  int max_batch() const override { return 256; }
  void set_threads(int n) override {
    std::lock_guard<FairMutex> lock(mutex_);
    if (n != pool_->size()) pool_ = std::make_unique<ThreadPool>(n);
  }
  int threads() const override { return pool_->size(); }

  std::unique_ptr<KVCache> create_cache(int initial_capacity, KVType type) override {
    return std::make_unique<CpuKVCache>(c_, std::max(1, initial_capacity), type);
  }

  void forward(KVCache& cache_base, const ForwardRequest& req) override {
    // One forward at a time (scratch and pool are shared), in arrival order across sessions.
    std::lock_guard<FairMutex> lock(mutex_);
    auto& cache = static_cast<CpuKVCache&>(cache_base);
    const int nt = req.n_tokens;
    if (nt <= 0) return;
    cache.reserve(req.start_pos + nt);
    prepare_scratch(nt);
    rope_angles(nt, req.start_pos, req.rope_base);

    const int dim = c_.dim, hd = c_.head_dim;
    const int q_dim = c_.n_heads * hd;
    for (int t = 0; t < nt; t++) {
      const int32_t id = req.tokens[t];
      if (id < 0 || id >= c_.vocab_size) throw Error("token id " + std::to_string(id) + " is out of range");
      cpu::dequantize_row(model_.weights.tok_embd, id, x_.data() + size_t(t) * dim);
    }

    for (int l = 0; l < c_.n_layers; l++) {
      const LayerWeights& L = model_.weights.layers[l];
      rmsnorm(x_.data(), L.attn_norm.data(), xn_.data(), nt);
      project_qkv(L, nt);
      apply_rope(q_.data(), c_.n_heads, nt);
      apply_rope(k_.data(), c_.n_kv_heads, nt);
      store_kv(cache, l, req.start_pos, nt);
      attention(cache, l, nt, req.start_pos);
      matmul(L.wo, att_.data(), q_dim, nt, tmp_.data(), dim);
      add_into(x_.data(), tmp_.data(), size_t(nt) * dim);

      rmsnorm(x_.data(), L.ffn_norm.data(), xn_.data(), nt);
      matmul(L.w1, xn_.data(), dim, nt, gate_.data(), c_.ffn_dim);
      matmul(L.w3, xn_.data(), dim, nt, up_.data(), c_.ffn_dim, /*same_input=*/true);
      swiglu(nt);
      matmul(L.w2, gate_.data(), c_.ffn_dim, nt, tmp_.data(), dim);
      add_into(x_.data(), tmp_.data(), size_t(nt) * dim);
    }

    const int n_logits = nt - req.logits_from;
    if (n_logits > 0 && req.logits_out) {
      const float* last = x_.data() + size_t(req.logits_from) * dim;
      rmsnorm(last, model_.weights.output_norm.data(), xn_.data(), n_logits);
      matmul(model_.weights.output, xn_.data(), dim, n_logits, req.logits_out, c_.vocab_size);
    }
  }

 private:
  void check_weights() const {
    auto check = [&](const Tensor& t) {
      if (!t.empty() && !dtype_supported(t.type))
        throw Error("tensor " + t.name + " has type " + dtype_name(t.type) + ", which the CPU backend does not support");
    };
    check(model_.weights.tok_embd);
    check(model_.weights.output);
    for (const auto& L : model_.weights.layers)
      for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.w1, &L.w2, &L.w3}) check(*t);
  }

  // Builds the page tables of the mapped weight files now, as llama.cpp's MAP_POPULATE does, rather
  // than by a page fault per 4 KB inside the first prompt's matmuls (measured: the first prefill
  // after loading ran 35% slower). The pages stay file-backed: nothing is copied.
  void prefault_weights() const {
    for (const auto& file : model_.files) {
      auto* base = const_cast<uint8_t*>(file->data());
#ifdef MADV_POPULATE_READ
      if (::madvise(base, file->size(), MADV_POPULATE_READ) == 0) continue;
#endif
      volatile uint8_t sink = 0;
      for (size_t off = 0; off < file->size(); off += 4096) sink = sink + base[off];
    }
  }

  void prepare_scratch(int nt) {
    const size_t hd = c_.head_dim;
    const size_t qkv_dim = (size_t(c_.n_heads) + 2 * c_.n_kv_heads) * hd;
    auto fit = [&](std::vector<float>& v, size_t n) { if (v.size() < n) v.resize(n); };
    fit(x_, size_t(nt) * c_.dim);
    fit(xn_, size_t(nt) * c_.dim);
    fit(tmp_, size_t(nt) * std::max<size_t>(c_.dim, qkv_dim));
    fit(q_, size_t(nt) * c_.n_heads * hd);
    fit(k_, size_t(nt) * c_.n_kv_heads * hd);
    fit(v_, size_t(nt) * c_.n_kv_heads * hd);
    fit(att_, size_t(nt) * c_.n_heads * hd);
    fit(gate_, size_t(nt) * c_.ffn_dim);
    fit(up_, size_t(nt) * c_.ffn_dim);
  }

  // Y[t * ldy + r] = W[r] . X[t] for every output row r of W; X rows are n floats apart.
  // same_input: X is what the previous matmul read, so its converted rows are reused when that
  // matmul converted to the same format (Q, K and V, or gate and up, share their input).
  void matmul(const Tensor& W, const float* X, int n, int nt, float* Y, int ldy, bool same_input = false) {
    const auto& K = kernels();
    const cpu::WeightKernel wk = cpu::weight_kernel(K, W.type);
    if (!wk.gemm) throw Error(std::string("the CPU backend has no kernel for ") + dtype_name(W.type) + " weights");
    const int nr = int(W.rows());
    const cpu::GemmTileFn tile = wk.gemm;
    // Activations go through act_ even as f32: the kernels' 64-byte loads stay within one cache
    // line when rows start on one (measured 10% faster quantized GEMMs than 16-byte aligned rows).
    const size_t ldx = cpu::act_row_bytes(wk.act, n);
    act_.resize(ldx * nt + 64);
    uint8_t* xs = act_.data() + (64 - reinterpret_cast<uintptr_t>(act_.data()) % 64) % 64;
    const ActKey key{X, wk.act, n, nt};
    if (!(same_input && key == act_key_)) {
      run_parallel(nt, double(nt) * n, [&](int t, int) {
        cpu::quantize_activation(K, wk.act, X + size_t(t) * n, xs + t * ldx, n);
      });
    }
    act_key_ = key;
    const size_t ldw = W.row_bytes();
    constexpr int kTokBlock = 32;
    // Prefill reuses each 16-row block across the tokens. Decode streams every weight once: there
    // a few long contiguous ranges per thread keep the hardware prefetcher on one stream, where
    // 16-row blocks handed out in turn restart it every few KB in each thread.
    const int row_block = nt <= 2 ? std::max(16, (nr / (pool_->size() * 4) + 15) / 16 * 16) : 16;
    const int row_blocks = (nr + row_block - 1) / row_block;
    run_parallel(row_blocks, double(nr) * n * nt, [&](int b, int) {
      const int r0 = b * row_block, rn = std::min(row_block, nr - r0);
      for (int t0 = 0; t0 < nt; t0 += kTokBlock) {
        const int tn = std::min(kTokBlock, nt - t0);
        tile(W.data + size_t(r0) * ldw, ldw, xs + size_t(t0) * ldx, ldx, Y + size_t(t0) * ldy + r0, size_t(ldy), rn, tn, n);
      }
    });
  }

  // Below ~64K multiply-adds a loop finishes before a worker would wake: run it inline.
  template <typename Fn>
  void run_parallel(int n_tasks, double work, const Fn& fn) {
    if (work < 65536.0) {
      for (int t = 0; t < n_tasks; t++) fn(t, 0);
    } else {
      pool_->parallel_for(n_tasks, fn);
    }
  }

  void project_qkv(const LayerWeights& L, int nt) {
    const int dim = c_.dim, hd = c_.head_dim;
    const int q_dim = c_.n_heads * hd, kv_dim = c_.n_kv_heads * hd;
    if (L.wqkv.empty()) {
      matmul(L.wq, xn_.data(), dim, nt, q_.data(), q_dim);
      matmul(L.wk, xn_.data(), dim, nt, k_.data(), kv_dim, /*same_input=*/true);
      matmul(L.wv, xn_.data(), dim, nt, v_.data(), kv_dim, /*same_input=*/true);
      return;
    }
    // HF packed wqkv: per KV group g, G query heads, then K head g, then V head g.
    const int G = c_.n_heads / c_.n_kv_heads;
    const int packed = q_dim + 2 * kv_dim;
    matmul(L.wqkv, xn_.data(), dim, nt, tmp_.data(), packed);
    for (int t = 0; t < nt; t++) {
      const float* src = tmp_.data() + size_t(t) * packed;
      for (int g = 0; g < c_.n_kv_heads; g++) {
        const float* group = src + size_t(g) * (G + 2) * hd;
        std::memcpy(q_.data() + size_t(t) * q_dim + size_t(g) * G * hd, group, size_t(G) * hd * sizeof(float));
        std::memcpy(k_.data() + size_t(t) * kv_dim + size_t(g) * hd, group + size_t(G) * hd, hd * sizeof(float));
        std::memcpy(v_.data() + size_t(t) * kv_dim + size_t(g) * hd, group + size_t(G + 1) * hd, hd * sizeof(float));
      }
    }
  }

  void rmsnorm(const float* x, const float* w, float* out, int nt) {
    const int dim = c_.dim;
    for (int t = 0; t < nt; t++) {
      const float* xr = x + size_t(t) * dim;
      float* o = out + size_t(t) * dim;
      double sum = 0.0;
      for (int i = 0; i < dim; i++) sum += double(xr[i]) * double(xr[i]);
      const float scale = 1.0f / std::sqrt(float(sum / dim) + c_.norm_eps);
      for (int i = 0; i < dim; i++) o[i] = xr[i] * scale * w[i];
    }
  }

  // cos/sin of every rotation pair for positions start .. start + nt - 1 with the session's base,
  // once per forward (all layers and both Q and K use them). The angles are computed as llama.cpp
  // does for pairwise files (theta *= base^(-2/d) per pair) and as Hugging Face does for
  // rotate-half checkpoints (inv_freq = 1 / base^(2i/d)), so each matches its reference.
  void rope_angles(int nt, int start, float base) {
    const int hd = c_.head_dim, half = hd / 2;
    rope_cs_.resize(size_t(nt) * hd);
    const float theta_scale = std::pow(base, -2.0f / float(hd));
    for (int t = 0; t < nt; t++) {
      float* cs = rope_cs_.data() + size_t(t) * hd;
      const float pos = float(start + t);
      if (c_.rope_layout == RopeLayout::Pairwise) {
        float theta = pos;
        for (int i = 0; i < half; i++) {
          cs[2 * i] = std::cos(theta);
          cs[2 * i + 1] = std::sin(theta);
          theta *= theta_scale;
        }
      } else {
        for (int i = 0; i < half; i++) {
          const float inv_freq = 1.0f / std::pow(base, float(2 * i) / float(hd));
          const float theta = pos * inv_freq;
          cs[2 * i] = std::cos(theta);
          cs[2 * i + 1] = std::sin(theta);
        }
      }
    }
  }

  // Rotates each head of rows[t] by the angles of position t (rope_angles).
  void apply_rope(float* rows, int n_heads, int nt) {
    const int hd = c_.head_dim, half = hd / 2;
    const bool pairwise = c_.rope_layout == RopeLayout::Pairwise;
    run_parallel(nt, double(nt) * n_heads * hd, [&](int t, int) {
      const float* cs = rope_cs_.data() + size_t(t) * hd;
      for (int h = 0; h < n_heads; h++) {
        float* v = rows + (size_t(t) * n_heads + h) * hd;
        for (int i = 0; i < half; i++) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const int a = pairwise ? 2 * i : i;
          const int b = pairwise ? 2 * i + 1 : i + half;
          const float x0 = v[a], x1 = v[b];
          v[a] = x0 * c - x1 * s;
          v[b] = x0 * s + x1 * c;
        }
      }
    });
  }

  void store_kv(CpuKVCache& cache, int layer, int start, int nt) {
    const int hd = c_.head_dim, kv_dim = c_.n_kv_heads * hd;
    for (int t = 0; t < nt; t++) {
      const float* k = k_.data() + size_t(t) * kv_dim;
      const float* v = v_.data() + size_t(t) * kv_dim;
      if (cache.type() == KVType::F32) {
        std::memcpy(cache.k(layer, start + t), k, kv_dim * sizeof(float));
        std::memcpy(cache.v(layer, start + t), v, kv_dim * sizeof(float));
        continue;
      }
      const auto& kv = cpu::kv_kernels(cache.type());
      for (int g = 0; g < c_.n_kv_heads; g++) {
        kv.store(k + size_t(g) * hd, cache.k_row(layer, start + t) + g * cache.head_bytes(), hd);
        kv.store(v + size_t(g) * hd, cache.v_row(layer, start + t) + g * cache.head_bytes(), hd);
      }
    }
  }

  // Causal GQA attention with an online softmax over blocks of keys, so no L x L score matrix
  // is ever formed. One task = one KV head and one query position, with all G query heads of that
  // KV head at once: each block of keys is one small GEMM against the G queries and each value row
  // is read once for all of them (its share of a 256-token prefill fell from 16% to 9%). A
  // quantized cache is read row by row through kv_kernels, dequantizing in registers, so it is
  // never expanded.
  void attention(CpuKVCache& cache, int layer, int nt, int start) {
    const auto& K = kernels();
    const int hd = c_.head_dim, G = c_.n_heads / c_.n_kv_heads;
    const int q_dim = c_.n_heads * hd;
    const size_t kv_row = size_t(c_.n_kv_heads) * hd;  // floats between positions in the cache
    const cpu::KVKernels* kv = cache.type() == KVType::F32 ? nullptr : &cpu::kv_kernels(cache.type());
    const float scale = 1.0f / std::sqrt(float(hd));
    constexpr int kKeyBlock = 64;
    const double work = double(c_.n_heads) * nt * (start + nt) * hd;
    run_parallel(c_.n_kv_heads * nt, work, [&](int task, int) {
      const int g = task % c_.n_kv_heads, t = task / c_.n_kv_heads;
      const int n_keys = start + t + 1;
      thread_local std::vector<float> scratch;
      scratch.resize(size_t(G) * (kKeyBlock + 2));
      float* scores = scratch.data();  // [G][kKeyBlock]
      float* running_max = scores + size_t(G) * kKeyBlock;
      float* denom = running_max + G;
      const float* q = q_.data() + size_t(t) * q_dim + size_t(g) * G * hd;  // heads g*G .. g*G+G-1
      float* out = att_.data() + size_t(t) * q_dim + size_t(g) * G * hd;
      std::fill(out, out + size_t(G) * hd, 0.0f);
      std::fill(running_max, running_max + G, -INFINITY);
      std::fill(denom, denom + G, 0.0f);
      for (int j0 = 0; j0 < n_keys; j0 += kKeyBlock) {
        const int jn = std::min(kKeyBlock, n_keys - j0);
        if (kv) {  // quantized keys: dequantized inside the dot product
          for (int j = 0; j < jn; j++)
            kv->dot(q, hd, G, cache.k_row(layer, j0 + j) + g * cache.head_bytes(), hd, scores + j, kKeyBlock);
        } else {
          const float* keys = cache.k(layer, j0) + size_t(g) * hd;
          K.gemm_f32(reinterpret_cast<const uint8_t*>(keys), kv_row * sizeof(float), reinterpret_cast<const uint8_t*>(q),
                     size_t(hd) * sizeof(float), scores, kKeyBlock, jn, G, hd);
        }
        for (int s = 0; s < G; s++) {
          float* p = scores + size_t(s) * kKeyBlock;
          float block_max = -INFINITY;
          for (int j = 0; j < jn; j++) block_max = std::max(block_max, p[j] *= scale);
          if (block_max > running_max[s]) {
            const float rescale = std::exp(running_max[s] - block_max);
            K.scale_f32(rescale, out + size_t(s) * hd, hd);
            denom[s] *= rescale;
            running_max[s] = block_max;
          }
          denom[s] += K.exp_sum_f32(p, jn, running_max[s]);
        }
        if (kv) {
          for (int j = 0; j < jn; j++)
            kv->axpy(scores + j, kKeyBlock, G, cache.v_row(layer, j0 + j) + g * cache.head_bytes(), out, hd, hd);
        } else {
          K.mix_rows_f32(scores, kKeyBlock, G, cache.v(layer, j0) + size_t(g) * hd, kv_row, jn, out, hd, hd);
        }
      }
      for (int s = 0; s < G; s++) K.scale_f32(1.0f / denom[s], out + size_t(s) * hd, hd);
    });
  }

  void swiglu(int nt) {
    const int ffn = c_.ffn_dim;
    run_parallel(nt, double(nt) * ffn * 8, [&](int t, int) {
      kernels().silu_mul_f32(gate_.data() + size_t(t) * ffn, up_.data() + size_t(t) * ffn, size_t(ffn));
    });
  }

  static void add_into(float* x, const float* y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
  }

  const Model& model_;
  const ModelConfig& c_;
  std::unique_ptr<ThreadPool> pool_;
  FairMutex mutex_;
  std::vector<float> x_, xn_, tmp_, q_, k_, v_, att_, gate_, up_;
  // Which activations act_ holds, for matmuls that share their input.
  struct ActKey {
    const float* x = nullptr;
    cpu::ActFormat format = cpu::ActFormat::F32;
    int n = 0, nt = 0;
    bool operator==(const ActKey& o) const { return x == o.x && format == o.format && n == o.n && nt == o.nt; }
  };
  std::vector<uint8_t> act_;  // activations converted for the current weight type (64-byte aligned rows)
  ActKey act_key_;
  std::vector<float> rope_cs_;  // [token][pair] cos, sin for this forward
};

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(const Model& model, int threads) {
  return std::make_unique<CpuBackend>(model, threads);
}

}  // namespace ilm
