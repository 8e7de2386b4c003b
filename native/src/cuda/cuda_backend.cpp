// The InternLM2 forward pass on one CUDA GPU (the same math as cpu/cpu_backend.cpp): every op
// runs on the device, activations stay there, and only the requested logits rows come back.
// A decode step (one token, one logits row) is captured once per KV cache as a CUDA graph and
// replayed, which removes the launch gaps between its ~10 kernels per layer.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cuda/cuda_util.h"
#include "cuda/cuda_weights.h"
#include "cuda/kernels.h"
#include "util/error.h"

namespace ilm::cuda {
namespace {

constexpr int kMaxBatch = 1024;    // tokens per forward call (prefill chunk)
constexpr int kLogitsRows = 64;    // logits rows computed and copied back per round
constexpr size_t kSlackBytes = size_t(256) << 20;  // context, kernels' own allocations

// Working buffers for up to kMaxBatch tokens; sizes depend only on the model's shape.
struct ScratchSizes {
  size_t x, qkv, q, gu, h, x16, xq, xd, partial, logits;
  int splits;

  ScratchSizes(const ModelConfig& c, int sm_count) {
    const size_t B = kMaxBatch, dim = c.dim, hd = c.head_dim;
    const size_t q_dim = size_t(c.n_heads) * hd, kv_dim = size_t(c.n_kv_heads) * hd;
    const size_t widest = std::max({dim, q_dim, size_t(c.ffn_dim)});
    x = B * dim;
    qkv = B * (q_dim + 2 * kv_dim);
    q = B * q_dim;
    gu = B * 2 * size_t(c.ffn_dim);
    h = B * size_t(c.ffn_dim);
    x16 = B * widest;
    xq = B * widest;
    xd = B * widest / 32;
    // Decode splits each row's keys so that about two blocks per multiprocessor run.
    splits = std::clamp((2 * sm_count + c.n_kv_heads - 1) / c.n_kv_heads, 1, 64);
    partial = size_t(kGemvMaxTokens) * c.n_heads * splits * (hd + 2);
    logits = size_t(kLogitsRows) * c.vocab_size;
  }
  size_t bytes() const {
    return (3 * x + qkv + 2 * q + gu + h + xd + partial + logits) * sizeof(float) + x16 * 2 + xq +
           sizeof(StepParams) + kMaxBatch * sizeof(int32_t);
  }
};

int sm_count_of(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return n;
}

// K (after RoPE) and V of every layer as fp16, [layer][position][kv_head][head_dim].
class CudaKVCache final : public KVCache {
 public:
  CudaKVCache(int device, const ModelConfig& c, int capacity)
      : device_(device), layers_(c.n_layers), row_(size_t(c.n_kv_heads) * c.head_dim) {
    reserve(capacity);
  }

  int capacity() const override { return capacity_; }

  void reserve(int n) override {
    if (n <= capacity_) return;
    DeviceScope scope(device_);
    const int grown = std::max(n, capacity_ + capacity_ / 2);
    DeviceArray<uint16_t> k, v;
    try {
      allocate(grown, k, v);
    } catch (const Error&) {
      if (grown == n) throw;
      allocate(n, k, v);  // the 1.5x headroom does not fit, the exact size may
    }
    const int new_capacity = int(k.size() / (size_t(layers_) * row_));
    if (capacity_ > 0) {
      // Positions [0, capacity_) of every layer move to the wider per-layer stride.
      const size_t old_pitch = size_t(capacity_) * row_ * 2, new_pitch = size_t(new_capacity) * row_ * 2;
      check(cudaMemcpy2D(k.get(), new_pitch, k_.get(), old_pitch, old_pitch, layers_, cudaMemcpyDeviceToDevice), "KV cache copy");
      check(cudaMemcpy2D(v.get(), new_pitch, v_.get(), old_pitch, old_pitch, layers_, cudaMemcpyDeviceToDevice), "KV cache copy");
      check(cudaDeviceSynchronize(), "KV cache copy");
    }
    k_ = std::move(k);
    v_ = std::move(v);
    capacity_ = new_capacity;
    decode_graph.reset();  // it points at the old buffers
  }

  KVType type() const override { return KVType::F16; }
  size_t position_bytes() const override { return row_ * 2; }
  void read_rows(int layer, bool value, int from, int n, void* dst) const override {
    DeviceScope scope(device_);
    const uint16_t* src = (value ? v(layer) : k(layer)) + size_t(from) * row_;
    check(cudaMemcpy(dst, src, size_t(n) * row_ * 2, cudaMemcpyDeviceToHost), "KV cache read");
  }
  void write_rows(int layer, bool value, int from, int n, const void* src) override {
    DeviceScope scope(device_);
    uint16_t* dst = (value ? v(layer) : k(layer)) + size_t(from) * row_;
    check(cudaMemcpy(dst, src, size_t(n) * row_ * 2, cudaMemcpyHostToDevice), "KV cache write");
  }

  uint16_t* k(int layer) const { return k_.get() + size_t(layer) * capacity_ * row_; }
  uint16_t* v(int layer) const { return v_.get() + size_t(layer) * capacity_ * row_; }

  GraphExec decode_graph;

 private:
  void allocate(int positions, DeviceArray<uint16_t>& k, DeviceArray<uint16_t>& v) const {
    const size_t n = size_t(layers_) * positions * row_;
    const std::string what = "the KV cache for " + std::to_string(positions) + " positions";
    try {
      k = DeviceArray<uint16_t>(n, device_, what + " (keys)");
      v = DeviceArray<uint16_t>(n, device_, what + " (values)");
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + "; use a shorter context");
    }
  }

  int device_;
  int layers_;
  size_t row_;
  int capacity_ = 0;
  DeviceArray<uint16_t> k_, v_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Model& model, int device, int threads)
      : model_(model), c_(model.config), device_(device), threads_(threads),
        scope_(device), stream_(device), sizes_(c_, sm_count_of(device)) {
    // INTERNLM_CUDA_GRAPHS=0 replays nothing (for timing the difference); INTERNLM_CUDA_SYNC=1
    // (a sync after every kernel, see common.cuh) cannot run inside a capture either.
    const char* graphs = std::getenv("INTERNLM_CUDA_GRAPHS");
    const char* sync = std::getenv("INTERNLM_CUDA_SYNC");
    use_graphs_ = !(graphs && std::string(graphs) == "0") && !(sync && *sync && *sync != '0');
    weights_ = upload_weights(model_, device_, stream_.get());
    allocate_scratch();
  }

  std::string name() const override { return "cuda"; }
  int max_batch() const override { return kMaxBatch; }
  void set_threads(int n) override { threads_ = n; }  // host threads are not used on this backend
  int threads() const override { return threads_; }

  KVType default_kv_type() const override { return KVType::F16; }
  std::unique_ptr<KVCache> create_cache(int initial_capacity, KVType type) override {
    // The cache here is fp16; other types await CUDA kernels that read them.
    if (type != KVType::F16)
      throw Error(std::string("KV type ") + kv_type_name(type) + " is not available on CUDA yet");
    return std::make_unique<CudaKVCache>(device_, c_, std::max(1, initial_capacity));
  }

  void forward(KVCache& cache_base, const ForwardRequest& req) override {
    std::lock_guard<std::mutex> lock(mutex_);  // one forward at a time: scratch and stream are shared
    DeviceScope scope(device_);
    auto& cache = static_cast<CudaKVCache&>(cache_base);
    const int nt = req.n_tokens;
    if (nt <= 0) return;
    if (nt > kMaxBatch) throw Error("the CUDA backend takes at most " + std::to_string(kMaxBatch) + " tokens per call");
    for (int t = 0; t < nt; t++)
      if (req.tokens[t] < 0 || req.tokens[t] >= c_.vocab_size)
        throw Error("token id " + std::to_string(req.tokens[t]) + " is out of range");
    cache.reserve(req.start_pos + nt);
    upload_step(req);

    const int logits_from = req.logits_out ? std::clamp(req.logits_from, 0, nt) : nt;
    const int n_logits = nt - logits_from;
    if (use_graphs_ && nt == 1 && n_logits == 1) {
      decode_with_graph(cache);
      stream_.sync();
      std::memcpy(req.logits_out, logits_host_.get(), size_t(c_.vocab_size) * sizeof(float));
      return;
    }
    enqueue_layers(cache, nt);
    for (int r0 = logits_from; r0 < nt; r0 += kLogitsRows) {
      const int rows = std::min(kLogitsRows, nt - r0);
      enqueue_head(r0, rows);
      stream_.sync();
      std::memcpy(req.logits_out + size_t(r0 - logits_from) * c_.vocab_size, logits_host_.get(),
                  size_t(rows) * c_.vocab_size * sizeof(float));
    }
    stream_.sync();
  }

 private:
  void allocate_scratch() {
    const ScratchSizes& s = sizes_;
    auto f32 = [&](size_t n) { return DeviceArray<float>(n, device_, "the CUDA backend's working buffers"); };
    x_ = f32(s.x);
    xn_ = f32(s.x);
    qkv_ = f32(s.qkv);
    q_ = f32(s.q);
    att_ = f32(s.q);
    gu_ = f32(s.gu);
    h_ = f32(s.h);
    xd_ = f32(s.xd);
    partial_ = f32(s.partial);
    logits_ = f32(s.logits);
    x16_ = DeviceArray<uint16_t>(s.x16, device_, "the CUDA backend's working buffers");
    xq_ = DeviceArray<int8_t>(s.xq, device_, "the CUDA backend's working buffers");
    step_ = DeviceArray<uint8_t>(sizeof(StepParams) + kMaxBatch * sizeof(int32_t), device_, "the step parameters");
    step_host_ = PinnedBuffer(step_.bytes());
    logits_host_ = PinnedBuffer(s.logits * sizeof(float));
  }

  const StepParams* params() const { return reinterpret_cast<const StepParams*>(step_.get()); }
  const int32_t* tokens() const { return reinterpret_cast<const int32_t*>(step_.get() + sizeof(StepParams)); }

  // RoPE factors computed on the host exactly as the CPU backend computes them (std::pow in
  // float), so both backends rotate by the same angles.
  void upload_step(const ForwardRequest& req) {
    StepParams* p = step_host_.get<StepParams>();
    std::memset(p, 0, sizeof(StepParams));
    p->start_pos = req.start_pos;
    p->n_tokens = req.n_tokens;
    const int hd = c_.head_dim;
    const float base = req.rope_base;
    p->theta_scale = std::pow(base, -2.0f / float(hd));
    for (int i = 0; i < hd / 2; i++) p->inv_freq[i] = 1.0f / std::pow(base, float(2 * i) / float(hd));
    std::memcpy(step_host_.get<uint8_t>() + sizeof(StepParams), req.tokens, size_t(req.n_tokens) * sizeof(int32_t));
    check(cudaMemcpyAsync(step_.get(), step_host_.get(), sizeof(StepParams) + size_t(req.n_tokens) * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_.get()),
          "step upload");
  }

  // y = W x (or y += W x) for nt rows of x, converting x to what W's kernel reads.
  void matmul(const DevMatrix& w, const float* x, int nt, float* y, int ldy, Epilogue epilogue) {
    cudaStream_t s = stream_.get();
    const Q8Act xq{xq_.get(), xd_.get()};
    if (w.type == WType::Q8) quantize_q8(x, xq, nt, w.cols, s);
    if (nt <= kGemvMaxTokens) {
      gemv(w, x, xq, nt, y, ldy, epilogue, s);
    } else {
      if (w.type != WType::Q8) to_f16(x, x16_.get(), size_t(nt) * w.cols, s);
      gemm(w, x16_.get(), xq, nt, y, ldy, epilogue, s);
    }
  }

  void enqueue_layers(CudaKVCache& cache, int nt) {
    cudaStream_t s = stream_.get();
    const int dim = c_.dim, hd = c_.head_dim, ffn = c_.ffn_dim;
    const int q_dim = c_.n_heads * hd, kv_dim = c_.n_kv_heads * hd;
    const AttentionShape shape{nt, c_.n_heads, c_.n_kv_heads, hd};
    const bool pairwise = c_.rope_layout == RopeLayout::Pairwise;
    embed(weights_.tok_embd.view, tokens(), nt, x_.get(), s);
    for (int l = 0; l < c_.n_layers; l++) {
      const DeviceLayer& L = weights_.layers[size_t(l)];
      rmsnorm(x_.get(), L.attn_norm.get(), xn_.get(), nt, dim, c_.norm_eps, s);
      matmul(L.wqkv.view, xn_.get(), nt, qkv_.get(), q_dim + 2 * kv_dim, Epilogue::Store);
      rope_store(qkv_.get(), params(), nt, c_.n_heads, c_.n_kv_heads, hd, pairwise, q_.get(), cache.k(l), cache.v(l), s);
      if (nt > kGemvMaxTokens && flash_supported(hd))
        attention_flash(q_.get(), cache.k(l), cache.v(l), params(), shape, att_.get(), s);
      else
        attention_split(q_.get(), cache.k(l), cache.v(l), params(), shape, nt <= kGemvMaxTokens ? sizes_.splits : 1,
                        partial_.get(), att_.get(), s);
      matmul(L.wo.view, att_.get(), nt, x_.get(), dim, Epilogue::Add);

      rmsnorm(x_.get(), L.ffn_norm.get(), xn_.get(), nt, dim, c_.norm_eps, s);
      if (nt <= kGemvMaxTokens) {
        const Q8Act xq{xq_.get(), xd_.get()};
        if (L.w13.view.type == WType::Q8) quantize_q8(xn_.get(), xq, nt, dim, s);
        gemv_swiglu(L.w13.view, xn_.get(), xq, nt, h_.get(), s);
      } else {
        matmul(L.w13.view, xn_.get(), nt, gu_.get(), 2 * ffn, Epilogue::Store);
        swiglu(gu_.get(), nt, ffn, h_.get(), s);
      }
      matmul(L.w2.view, h_.get(), nt, x_.get(), dim, Epilogue::Add);
    }
  }

  // Final norm and output head for rows [r0, r0 + rows), logits copied to the pinned buffer.
  void enqueue_head(int r0, int rows) {
    cudaStream_t s = stream_.get();
    rmsnorm(x_.get() + size_t(r0) * c_.dim, weights_.output_norm.get(), xn_.get(), rows, c_.dim, c_.norm_eps, s);
    matmul(weights_.output.view, xn_.get(), rows, logits_.get(), c_.vocab_size, Epilogue::Store);
    check(cudaMemcpyAsync(logits_host_.get(), logits_.get(), size_t(rows) * c_.vocab_size * sizeof(float),
                          cudaMemcpyDeviceToHost, s),
          "logits download");
  }

  // Everything of a one-token step reads its position and token from step_, so one capture per
  // cache (its buffers are baked in) serves every later step.
  void decode_with_graph(CudaKVCache& cache) {
    if (!cache.decode_graph.ready()) {
      cudaStream_t s = stream_.get();
      check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
      cudaGraph_t graph = nullptr;
      try {
        enqueue_layers(cache, 1);
        enqueue_head(0, 1);
      } catch (...) {
        cudaStreamEndCapture(s, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      check(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      check(status, "cudaGraphInstantiate");
      cache.decode_graph.adopt(exec);
    }
    check(cudaGraphLaunch(cache.decode_graph.get(), stream_.get()), "cudaGraphLaunch");
  }

  const Model& model_;
  const ModelConfig& c_;
  int device_;
  int threads_;
  DeviceScope scope_;
  Stream stream_;
  ScratchSizes sizes_;
  bool use_graphs_ = true;
  std::mutex mutex_;
  DeviceWeights weights_;
  DeviceArray<float> x_, xn_, qkv_, q_, att_, gu_, h_, xd_, partial_, logits_;
  DeviceArray<uint16_t> x16_;
  DeviceArray<int8_t> xq_;
  DeviceArray<uint8_t> step_;
  PinnedBuffer step_host_, logits_host_;
};

}  // namespace

size_t required_bytes(const Model& model) {
  check_supported(model);
  int device = 0;
  cudaGetDevice(&device);
  int sms = 132;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) cudaGetLastError();
  // Weights, working buffers, the upload staging buffer, a first 512-position KV cache, slack.
  const ModelConfig& c = model.config;
  const size_t kv = size_t(2) * c.n_layers * 512 * c.n_kv_heads * c.head_dim * 2;
  return weight_bytes(model) + ScratchSizes(c, sms).bytes() + (size_t(64) << 20) + kv + kSlackBytes;
}

std::unique_ptr<Backend> create_cuda_backend(const Model& model, int device, int threads) {
  DeviceScope scope(device);
  const size_t need = required_bytes(model);
  size_t free_bytes = 0, total = 0;
  memory_info(&free_bytes, &total);
  if (need > free_bytes)
    throw Error("the model needs " + format_gib(need) + " of GPU memory; GPU " + std::to_string(device) + " has " +
                format_gib(free_bytes) + " free");
  return std::make_unique<CudaBackend>(model, device, threads);
}

}  // namespace ilm::cuda
