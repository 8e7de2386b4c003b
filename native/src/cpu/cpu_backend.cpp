// The InternLM2 forward pass on the CPU (REFERENCE.md "Layer math"): pre-norm residual blocks
// of GQA attention and SwiGLU, f32 activations, weights read in their file type.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "engine/backend.h"
#include "engine/fair_mutex.h"
#include "util/error.h"

namespace ilm {
namespace {

using cpu::kernels;
using cpu::ThreadPool;

// K (after RoPE) and V per layer, laid out [position][kv_head][head_dim].
class CpuKVCache final : public KVCache {
 public:
  CpuKVCache(const ModelConfig& c, int capacity) : row_(size_t(c.n_kv_heads) * c.head_dim), k_(c.n_layers), v_(c.n_layers) {
    reserve(capacity);
  }
  int capacity() const override { return capacity_; }
  void reserve(int n) override {
    if (n <= capacity_) return;
    const int grown = std::max(n, capacity_ + capacity_ / 2);
    try {
      for (auto* layers : {&k_, &v_})
        for (auto& buf : *layers) buf.resize(size_t(grown) * row_);
    } catch (const std::bad_alloc&) {
      throw Error("out of memory: the KV cache for " + std::to_string(grown) + " positions (" +
                  std::to_string(bytes_for(grown) >> 20) + " MiB) does not fit in RAM; use a shorter context");
    }
    capacity_ = grown;
  }
  float* k(int layer, int pos) { return k_[layer].data() + size_t(pos) * row_; }
  float* v(int layer, int pos) { return v_[layer].data() + size_t(pos) * row_; }
  size_t bytes_for(int n) const { return size_t(n) * row_ * sizeof(float) * 2 * k_.size(); }

 private:
  size_t row_;
  int capacity_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Model& model, int threads) : model_(model), c_(model.config), pool_(std::make_unique<ThreadPool>(threads)) {
    check_weights();
  }

  std::string name() const override { return "cpu"; }
  int max_batch() const override { return 256; }
  void set_threads(int n) override {
    std::lock_guard<FairMutex> lock(mutex_);
    if (n != pool_->size()) pool_ = std::make_unique<ThreadPool>(n);
  }
  int threads() const override { return pool_->size(); }

  std::unique_ptr<KVCache> create_cache(int initial_capacity) override {
    return std::make_unique<CpuKVCache>(c_, std::max(1, initial_capacity));
  }

  void forward(KVCache& cache_base, const ForwardRequest& req) override {
    // One forward at a time (scratch and pool are shared), in arrival order across sessions.
    std::lock_guard<FairMutex> lock(mutex_);
    auto& cache = static_cast<CpuKVCache&>(cache_base);
    const int nt = req.n_tokens;
    if (nt <= 0) return;
    cache.reserve(req.start_pos + nt);
    prepare_scratch(nt);

    const int dim = c_.dim, hd = c_.head_dim;
    const int q_dim = c_.n_heads * hd, kv_dim = c_.n_kv_heads * hd;
    for (int t = 0; t < nt; t++) {
      const int32_t id = req.tokens[t];
      if (id < 0 || id >= c_.vocab_size) throw Error("token id " + std::to_string(id) + " is out of range");
      cpu::dequantize_row(model_.weights.tok_embd, id, x_.data() + size_t(t) * dim);
    }

    for (int l = 0; l < c_.n_layers; l++) {
      const LayerWeights& L = model_.weights.layers[l];
      rmsnorm(x_.data(), L.attn_norm.data(), xn_.data(), nt);
      project_qkv(L, nt);
      apply_rope(q_.data(), c_.n_heads, nt, req.start_pos, req.rope_base);
      apply_rope(k_.data(), c_.n_kv_heads, nt, req.start_pos, req.rope_base);
      for (int t = 0; t < nt; t++) {
        std::memcpy(cache.k(l, req.start_pos + t), k_.data() + size_t(t) * kv_dim, kv_dim * sizeof(float));
        std::memcpy(cache.v(l, req.start_pos + t), v_.data() + size_t(t) * kv_dim, kv_dim * sizeof(float));
      }
      attention(cache, l, nt, req.start_pos);
      matmul(L.wo, att_.data(), q_dim, nt, tmp_.data(), dim);
      add_into(x_.data(), tmp_.data(), size_t(nt) * dim);

      rmsnorm(x_.data(), L.ffn_norm.data(), xn_.data(), nt);
      matmul(L.w1, xn_.data(), dim, nt, gate_.data(), c_.ffn_dim);
      matmul(L.w3, xn_.data(), dim, nt, up_.data(), c_.ffn_dim);
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
  void matmul(const Tensor& W, const float* X, int n, int nt, float* Y, int ldy) {
    const auto& K = kernels();
    const cpu::WeightKernel wk = cpu::weight_kernel(K, W.type);
    if (!wk.gemm) throw Error(std::string("the CPU backend has no kernel for ") + dtype_name(W.type) + " weights");
    const int nr = int(W.rows());
    const cpu::GemmTileFn tile = wk.gemm;
    const uint8_t* xs = reinterpret_cast<const uint8_t*>(X);
    const size_t ldx = cpu::act_row_bytes(wk.act, n);
    if (wk.act != cpu::ActFormat::F32) {
      act_.resize(ldx * nt);
      run_parallel(nt, double(nt) * n, [&](int t, int) {
        cpu::quantize_activation(K, wk.act, X + size_t(t) * n, act_.data() + t * ldx, n);
      });
      xs = act_.data();
    }
    const size_t ldw = W.row_bytes();
    constexpr int kRowBlock = 16, kTokBlock = 32;
    const int row_blocks = (nr + kRowBlock - 1) / kRowBlock;
    run_parallel(row_blocks, double(nr) * n * nt, [&](int b, int) {
      const int r0 = b * kRowBlock, rn = std::min(kRowBlock, nr - r0);
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
      matmul(L.wk, xn_.data(), dim, nt, k_.data(), kv_dim);
      matmul(L.wv, xn_.data(), dim, nt, v_.data(), kv_dim);
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

  // Rotates each head of rows[t] by position start + t with the session's base. The angles are
  // computed as llama.cpp does for pairwise files (theta *= base^(-2/d) per pair) and as Hugging
  // Face does for rotate-half checkpoints (inv_freq = 1 / base^(2i/d)), so each matches its reference.
  void apply_rope(float* rows, int n_heads, int nt, int start, float base) {
    const int hd = c_.head_dim, half = hd / 2;
    std::vector<float> cs(size_t(half) * 2);
    const float theta_scale = std::pow(base, -2.0f / float(hd));
    for (int t = 0; t < nt; t++) {
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
      for (int h = 0; h < n_heads; h++) {
        float* v = rows + (size_t(t) * n_heads + h) * hd;
        for (int i = 0; i < half; i++) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const int a = c_.rope_layout == RopeLayout::Pairwise ? 2 * i : i;
          const int b = c_.rope_layout == RopeLayout::Pairwise ? 2 * i + 1 : i + half;
          const float x0 = v[a], x1 = v[b];
          v[a] = x0 * c - x1 * s;
          v[b] = x0 * s + x1 * c;
        }
      }
    }
  }

  // Causal GQA attention with an online softmax over blocks of keys, so no L x L score matrix
  // is ever formed. One task = one KV head and one query position (all G query heads of it).
  void attention(CpuKVCache& cache, int layer, int nt, int start) {
    const auto& K = kernels();
    const int hd = c_.head_dim, G = c_.n_heads / c_.n_kv_heads;
    const int q_dim = c_.n_heads * hd;
    const float scale = 1.0f / std::sqrt(float(hd));
    constexpr int kKeyBlock = 64;
    const double work = double(c_.n_heads) * nt * (start + nt) * hd;
    run_parallel(c_.n_kv_heads * nt, work, [&](int task, int) {
      const int g = task % c_.n_kv_heads, t = task / c_.n_kv_heads;
      const int n_keys = start + t + 1;
      float scores[kKeyBlock];
      for (int s = 0; s < G; s++) {
        const int h = g * G + s;
        const float* q = q_.data() + size_t(t) * q_dim + size_t(h) * hd;
        float* out = att_.data() + size_t(t) * q_dim + size_t(h) * hd;
        std::fill(out, out + hd, 0.0f);
        float running_max = -INFINITY, denom = 0.0f;
        for (int j0 = 0; j0 < n_keys; j0 += kKeyBlock) {
          const int jn = std::min(kKeyBlock, n_keys - j0);
          float block_max = -INFINITY;
          for (int j = 0; j < jn; j++) {
            scores[j] = K.dot_f32(q, cache.k(layer, j0 + j) + size_t(g) * hd, hd) * scale;
            block_max = std::max(block_max, scores[j]);
          }
          if (block_max > running_max) {
            const float rescale = std::exp(running_max - block_max);
            K.scale_f32(rescale, out, hd);
            denom *= rescale;
            running_max = block_max;
          }
          for (int j = 0; j < jn; j++) {
            const float p = std::exp(scores[j] - running_max);
            denom += p;
            K.axpy_f32(p, cache.v(layer, j0 + j) + size_t(g) * hd, out, hd);
          }
        }
        K.scale_f32(1.0f / denom, out, hd);
      }
    });
  }

  void swiglu(int nt) {
    const size_t n = size_t(nt) * c_.ffn_dim;
    for (size_t i = 0; i < n; i++) {
      const float g = gate_[i];
      gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];
    }
  }

  static void add_into(float* x, const float* y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
  }

  const Model& model_;
  const ModelConfig& c_;
  std::unique_ptr<ThreadPool> pool_;
  FairMutex mutex_;
  std::vector<float> x_, xn_, tmp_, q_, k_, v_, att_, gate_, up_;
  std::vector<uint8_t> act_;  // activations converted for the current weight type
};

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(const Model& model, int threads) {
  return std::make_unique<CpuBackend>(model, threads);
}

}  // namespace ilm
