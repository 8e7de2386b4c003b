// The InternLM2 forward pass on one CUDA GPU (the same math as cpu/cpu_backend.cpp): every op
// runs on the device, activations stay there, and only the requested logits rows come back, or
// only the k best (logit, id) pairs of the last row (ForwardRequest::top_k: greedy and top-k
// decoding). A decode step is captured once per KV cache (and per variant) as a CUDA graph and
// replayed, which removes the launch gaps between its 6-10 kernels per layer.
#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/cuda_util.h"
#include "cuda/cuda_weights.h"
#include "cuda/kernels.h"
#include "engine/memory_plan.h"
#include "util/error.h"

namespace ilm::cuda {
namespace {

constexpr int kMaxBatch = 1024;    // tokens per forward call (prefill chunk)
constexpr int kLogitsRows = 64;    // logits rows computed and copied back per round
constexpr size_t kSlackBytes = size_t(256) << 20;  // context, kernels' own allocations
constexpr size_t kRowStagingBytes = size_t(32) << 20;  // device staging of read_rows / write_rows

// Working buffers for up to kMaxBatch tokens; sizes depend only on the model's shape.
struct ScratchSizes {
  size_t x, qkv, q, gu, h, x16, xq, xd, partial, logits, ss, counters;
  // Prefill of low-bit (Blocks) weights: fp16 rows of one slice of a matrix at a time.
  static constexpr size_t kDequantHalves = size_t(32) << 20;
  size_t dequant;
  int n_partials;

  ScratchSizes(const ModelConfig& c, bool block_weights) {
    dequant = block_weights ? kDequantHalves : 0;
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
    partial = size_t(kGemvMaxTokens) * c.n_heads * kMaxSplits * (hd + 2);
    logits = size_t(kLogitsRows) * c.vocab_size;
    n_partials = ceil_div(c.dim, kGemvRowsPerBlock);
    ss = 2 * size_t(kGemvMaxTokens) * n_partials;
    counters = size_t(kGemvMaxTokens) * c.n_kv_heads;
  }
  static int ceil_div(int a, int b) { return (a + b - 1) / b; }
  size_t top_bytes() const { return size_t(kMaxTopK) * (sizeof(float) + sizeof(int32_t)); }
  size_t bytes() const {
    return (3 * x + qkv + 2 * q + gu + h + xd + partial + logits + ss) * sizeof(float) + (x16 + dequant) * 2 + xq +
           counters * sizeof(int) + size_t(kTopKBlocks) * kMaxTopK * 8 + top_bytes() + sizeof(StepParams) +
           kMaxBatch * sizeof(int32_t);
  }
};

int sm_count_of(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return n;
}

// K (after RoPE) and V of every layer in the session's KV type, head-major (kernels.h, KVLayer):
// per layer, one allocation of [K, V][kv_head][capacity] code rows and, for q8/q4, one of the
// matching (scale, zero) pairs. read_rows / write_rows speak the CPU's position-major rows, so a
// saved cache restores on either backend.
//
// Growing moves every row block to a wider stride, so old and new buffers exist at once. Layer by
// layer, that costs the old cache plus one layer of the new one. (With one allocation for all
// layers it cost old + new: by calculation, a session's prefill, which grows the cache chunk by
// chunk from 512 positions, would stop growing near half of the free memory: a q8 7B cache, 68 KiB
// per position, on an H200 with ~131 GiB free at ~1.0M positions, though ~1.9M fit.) Each layer keeps
// its own capacity (KVLayer::capacity), so a growth that fails halfway leaves a valid cache whose
// capacity() is the smallest layer's.
class CudaKVCache final : public KVCache {
 public:
  CudaKVCache(int device, const ModelConfig& c, int capacity, KVType type)
      : device_(device), type_(type), layers_(c.n_layers), n_kv_(c.n_kv_heads), hd_(c.head_dim),
        code_bytes_(kv_code_bytes(type, c.head_dim)), per_layer_(size_t(c.n_layers)) {
    reserve(capacity);
  }

  int capacity() const override { return capacity_; }

  void reserve(int n) override {
    if (n <= capacity_) return;
    DeviceScope scope(device_);
    const int exact = round_up(n);
    const int64_t headroom = std::min<int64_t>(int64_t(capacity_) + capacity_ / 2, growth_limit());
    const int grown = round_up(int(std::min<int64_t>(std::max<int64_t>(n, headroom), INT32_MAX - kKVPositionAlign)));
    // 1.5x headroom (few regrowths: each copies the cache and recaptures its graphs) when it fits,
    // else as much of it as fits, else the exact size (tried even when it looks too big).
    int target = std::max(exact, std::min(grown, fitting_capacity(n)));
    // Whatever happens below, capacity() and the graphs (they hold the old pointers) follow the
    // layers' buffers as they are now.
    struct Settle {
      CudaKVCache* cache;
      bool changed = false;
      ~Settle() {
        if (!changed) return;
        int smallest = INT32_MAX;
        for (const LayerBuffers& L : cache->per_layer_) smallest = std::min(smallest, L.capacity);
        cache->capacity_ = cache->per_layer_.empty() ? 0 : smallest;
        cache->decode_graph.reset();
        cache->decode_graph_top.reset();
      }
    } settle{this};
    for (LayerBuffers& L : per_layer_) {
      if (L.capacity >= n) continue;
      LayerBuffers fresh;
      try {
        allocate(target, n, fresh);
      } catch (const Error&) {
        if (target == exact) throw;
        target = exact;  // for this layer and the rest, so that they stay alike
        allocate(target, n, fresh);
      }
      if (L.capacity > 0) {
        // Positions [0, L.capacity) of every (K/V, head) row block move to the wider stride.
        const size_t old_pitch = size_t(L.capacity) * code_bytes_, new_pitch = size_t(fresh.capacity) * code_bytes_;
        check(cudaMemcpy2D(fresh.data.get(), new_pitch, L.data.get(), old_pitch, old_pitch, blocks(),
                           cudaMemcpyDeviceToDevice),
              "KV cache copy");
        if (kv_quantized(type_))
          check(cudaMemcpy2D(fresh.pairs.get(), size_t(fresh.capacity) * 8, L.pairs.get(), size_t(L.capacity) * 8,
                             size_t(L.capacity) * 8, blocks(), cudaMemcpyDeviceToDevice),
                "KV cache copy");
        check(cudaDeviceSynchronize(), "KV cache copy");
      }
      L = std::move(fresh);  // frees this layer's old buffers before the next layer allocates
      settle.changed = true;
    }
  }

  KVType type() const override { return type_; }
  size_t position_bytes() const override { return size_t(n_kv_) * kv_row_bytes(type_, hd_); }

  // Through a device staging buffer, chunk by chunk, on the legacy default stream (serialized
  // with the copies), then synchronized: no forward of this cache runs meanwhile (its session is busy).
  void read_rows(int layer, bool value, int from, int n, void* dst) const override {
    staged(layer, from, n, [&](uint8_t* staging, int done, int count, size_t pb) {
      kv_pack_rows(this->layer(layer), value, from + done, count, staging, nullptr);
      check(cudaMemcpy(static_cast<uint8_t*>(dst) + size_t(done) * pb, staging, size_t(count) * pb, cudaMemcpyDeviceToHost),
            "KV cache read");
    });
  }
  void write_rows(int layer, bool value, int from, int n, const void* src) override {
    staged(layer, from, n, [&](uint8_t* staging, int done, int count, size_t pb) {
      check(cudaMemcpy(staging, static_cast<const uint8_t*>(src) + size_t(done) * pb, size_t(count) * pb,
                       cudaMemcpyHostToDevice),
            "KV cache write");
      kv_unpack_rows(this->layer(layer), value, from + done, count, staging, nullptr);
    });
    check(cudaDeviceSynchronize(), "KV cache write");  // before a forward on the backend's stream reads them
  }

  KVLayer layer(int l) const {
    const LayerBuffers& L = per_layer_[size_t(l)];
    KVLayer kv;
    kv.type = type_;
    kv.capacity = L.capacity;
    kv.n_kv_heads = n_kv_;
    kv.head_dim = hd_;
    const size_t plane_rows = size_t(n_kv_) * L.capacity;  // (head, position) rows of one plane
    kv.k.data = L.data.get();
    kv.v.data = L.data.get() + plane_rows * code_bytes_;
    if (kv_quantized(type_)) {
      kv.k.sz = L.pairs.get();
      kv.v.sz = L.pairs.get() + plane_rows * 2;
    }
    return kv;
  }
  int device() const { return device_; }
  int layers() const { return layers_; }

  GraphExec decode_graph;      // one-token step, whole logits row back
  GraphExec decode_graph_top;  // one-token step, top-k candidates back

 private:
  struct LayerBuffers {
    DeviceArray<uint8_t> data;  // [K, V][kv_head][capacity][code_bytes]
    DeviceArray<float> pairs;   // [K, V][kv_head][capacity] (scale, zero), q8/q4 only
    int capacity = 0;
  };

  // Calls step(staging, done, count, position_bytes) for consecutive chunks of positions
  // [from, from + n) of one layer, each small enough for the staging buffer.
  template <typename Step>
  void staged(int layer, int from, int n, Step&& step) const {
    DeviceScope scope(device_);
    check_range(layer, from, n);
    const size_t pb = position_bytes();
    const int per = int(std::max<size_t>(1, std::min<size_t>(size_t(n), kRowStagingBytes / pb)));
    DeviceArray<uint8_t> staging(size_t(per) * pb, device_, "the KV cache's copy buffer");
    for (int done = 0; done < n; done += per) step(staging.get(), done, std::min(per, n - done), pb);
  }

  static int round_up(int n) { return (n + kKVPositionAlign - 1) / kKVPositionAlign * kKVPositionAlign; }
  int blocks() const { return 2 * n_kv_; }  // (K/V, head) row blocks of one layer

  void check_range(int layer, int from, int n) const {
    if (layer < 0 || layer >= layers_ || from < 0 || n < 0 || int64_t(from) + n > capacity_)
      throw Error("KV cache rows out of range (layer " + std::to_string(layer) + ", positions " + std::to_string(from) +
                  " + " + std::to_string(n) + " of " + std::to_string(capacity_) + ")");
  }

  // One layer's buffers for `positions` positions (a cache growing to hold `wanted`).
  void allocate(int positions, int wanted, LayerBuffers& out) const {
    const size_t rows = size_t(blocks()) * positions;
    try {
      out.data = DeviceArray<uint8_t>(rows * code_bytes_, device_, "the KV cache");
      if (kv_quantized(type_)) out.pairs = DeviceArray<float>(rows * 2, device_, "the KV cache");
      out.capacity = positions;
    } catch (const Error&) {
      out.data.reset();
      out.pairs.reset();
      size_t free_bytes = 0, total = 0;
      if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError();
      const size_t per_position = size_t(layers_) * layer_position_bytes();
      throw Error("the KV cache for " + std::to_string(wanted) + " positions (" + kv_type_name(type_) + ") needs " +
                  format_gib(per_position * size_t(wanted)) + " of GPU memory; GPU " + std::to_string(device_) +
                  " has " + format_gib(free_bytes) + " free besides the " + format_gib(bytes_held()) +
                  " this cache holds; use a shorter context or a smaller KV type (q8, q4)");
    }
  }

  // Bytes of one position of one layer: K and V codes of every head and, for q8/q4, their pairs.
  size_t layer_position_bytes() const { return size_t(blocks()) * (code_bytes_ + (kv_quantized(type_) ? 8 : 0)); }

  // The largest capacity (a multiple of kKVPositionAlign) to which every layer below n positions
  // can grow in the device's free memory now, keeping kDeviceReserveBytes free (staging buffers,
  // graphs, other allocations). Layer by layer, growing them to t needs the sum of their (t - old)
  // plus the largest old layer, which is still held while its last copy runs. 0: none or unknown.
  int fitting_capacity(int n) const {
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    const size_t per = layer_position_bytes();
    size_t growing = 0, old_bytes = 0, largest_old = 0;
    for (const LayerBuffers& L : per_layer_) {
      if (L.capacity >= n) continue;
      growing++;
      old_bytes += size_t(L.capacity) * per;
      largest_old = std::max(largest_old, size_t(L.capacity) * per);
    }
    if (growing == 0 || free_bytes + old_bytes <= kDeviceReserveBytes + largest_old) return 0;
    const size_t t = (free_bytes + old_bytes - kDeviceReserveBytes - largest_old) / (growing * per);
    return int(std::min<size_t>(t, INT32_MAX - kKVPositionAlign)) / kKVPositionAlign * kKVPositionAlign;
  }

  size_t bytes_held() const {
    size_t total = 0;
    for (const LayerBuffers& L : per_layer_) total += L.data.bytes() + L.pairs.bytes();
    return total;
  }

  int device_;
  KVType type_;
  int layers_, n_kv_, hd_;
  size_t code_bytes_;
  int capacity_ = 0;  // the smallest layer's
  std::vector<LayerBuffers> per_layer_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Model& model, int device, int threads)
      : model_(model), c_(model.config), device_(device), threads_(threads),
        scope_(device), stream_(device), sizes_(c_, has_block_weights(model)), sm_count_(sm_count_of(device)) {
    // INTERNLM_CUDA_GRAPHS=0 replays nothing (for timing the difference); INTERNLM_CUDA_SYNC=1
    // (a sync after every kernel, see common.cuh) cannot run inside a capture either.
    // INTERNLM_CUDA_FUSE=0 runs decode with separate RMSNorm kernels (to time or rule out the fusion).
    const char* graphs = std::getenv("INTERNLM_CUDA_GRAPHS");
    const char* sync = std::getenv("INTERNLM_CUDA_SYNC");
    const char* fuse = std::getenv("INTERNLM_CUDA_FUSE");
    use_graphs_ = !(graphs && std::string(graphs) == "0") && !(sync && *sync && *sync != '0');
    fuse_ = !(fuse && std::string(fuse) == "0");
    weights_ = upload_weights(model_, device_, stream_.get());
    allocate_scratch();
  }

  std::string name() const override { return "cuda"; }
  int max_batch() const override { return kMaxBatch; }
  void set_threads(int n) override { threads_ = n; }  // host threads are not used on this backend
  int threads() const override { return threads_; }
  uint64_t device_free_bytes() const override {
    DeviceScope scope(device_);
    size_t free_bytes = 0, total = 0;
    memory_info(&free_bytes, &total);
    return free_bytes;
  }
  int max_device_top_k() const override { return std::min(kMaxTopK, c_.vocab_size); }

  KVType default_kv_type() const override { return KVType::F16; }
  std::unique_ptr<KVCache> create_cache(int initial_capacity, KVType type) override {
    {
      // The decode split for this type, now rather than inside a graph capture (it queries the
      // kernel's occupancy).
      std::lock_guard<std::mutex> lock(mutex_);
      DeviceScope scope(device_);
      splits_for(type);
    }
    return std::make_unique<CudaKVCache>(device_, c_, std::max(1, initial_capacity), type);
  }

  void forward(KVCache& cache_base, const ForwardRequest& req) override {
    std::lock_guard<std::mutex> lock(mutex_);  // one forward at a time: scratch and stream are shared
    DeviceScope scope(device_);
    try {
      forward_locked(dynamic_cast<CudaKVCache&>(cache_base), req);
    } catch (...) {
      // Kernels enqueued before the failure must finish before the next call rewrites the pinned
      // step buffer or grows the cache (its copies do not wait for this stream).
      if (cudaStreamSynchronize(stream_.get()) != cudaSuccess) cudaGetLastError();
      throw;
    }
  }

  void forward_locked(CudaKVCache& cache, const ForwardRequest& req) {
    const int nt = req.n_tokens;
    if (nt <= 0) return;
    if (nt > kMaxBatch) throw Error("the CUDA backend takes at most " + std::to_string(kMaxBatch) + " tokens per call");
    for (int t = 0; t < nt; t++)
      if (req.tokens[t] < 0 || req.tokens[t] >= c_.vocab_size)
        throw Error("token id " + std::to_string(req.tokens[t]) + " is out of range");
    const int top = req.top_k > 0 ? std::min(req.top_k, max_device_top_k()) : 0;
    if (top > 0 && (!req.top_logits || !req.top_ids)) throw Error("forward: top_k needs top_logits and top_ids");
    cache.reserve(req.start_pos + nt);
    upload_step(req, top);

    if (top > 0) {  // only the last row's best candidates come back
      if (use_graphs_ && nt == 1) {
        decode_with_graph(cache, true);
      } else {
        enqueue_layers(cache, nt);
        enqueue_head(nt - 1, 1, nt <= kGemvMaxTokens, false);
        enqueue_top();
      }
      stream_.sync();
      const float* values = top_host_.get<float>();
      const int32_t* ids = reinterpret_cast<const int32_t*>(values + kMaxTopK);
      std::memcpy(req.top_logits, values, size_t(top) * sizeof(float));
      std::memcpy(req.top_ids, ids, size_t(top) * sizeof(int32_t));
      return;
    }

    const int logits_from = req.logits_out ? std::clamp(req.logits_from, 0, nt) : nt;
    const int n_logits = nt - logits_from;
    if (use_graphs_ && nt == 1 && n_logits == 1) {
      decode_with_graph(cache, false);
      stream_.sync();
      std::memcpy(req.logits_out, logits_host_.get(), size_t(c_.vocab_size) * sizeof(float));
      return;
    }
    enqueue_layers(cache, nt);
    for (int r0 = logits_from; r0 < nt; r0 += kLogitsRows) {
      const int rows = std::min(kLogitsRows, nt - r0);
      enqueue_head(r0, rows, nt <= kGemvMaxTokens, true);
      stream_.sync();
      std::memcpy(req.logits_out + size_t(r0 - logits_from) * c_.vocab_size, logits_host_.get(),
                  size_t(rows) * c_.vocab_size * sizeof(float));
    }
    stream_.sync();
  }

  // Benchmarks only (bench_fill_cache).
  void fill_cache(CudaKVCache& cache, int n, uint32_t seed) {
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceScope scope(device_);
    cache.reserve(n);
    for (int l = 0; l < cache.layers(); l++) kv_fill_random(cache.layer(l), n, seed + uint32_t(l) * 7919u, stream_.get());
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
    ss_ = f32(s.ss);
    x16_ = DeviceArray<uint16_t>(s.x16, device_, "the CUDA backend's working buffers");
    if (s.dequant) dequant_ = DeviceArray<uint16_t>(s.dequant, device_, "the CUDA backend's working buffers");
    xq_ = DeviceArray<int8_t>(s.xq, device_, "the CUDA backend's working buffers");
    counters_ = DeviceArray<int>(s.counters, device_, "the CUDA backend's working buffers");
    // attention_split leaves them zero after every launch; start them so, on the backend's stream
    // (a non-blocking stream does not wait for a plain cudaMemset).
    check(cudaMemsetAsync(counters_.get(), 0, counters_.bytes(), stream_.get()), "cudaMemsetAsync");
    stream_.sync();
    top_scratch_ = DeviceArray<unsigned long long>(size_t(kTopKBlocks) * kMaxTopK, device_, "the top-k buffers");
    top_ = DeviceArray<uint8_t>(s.top_bytes(), device_, "the top-k buffers");
    step_ = DeviceArray<uint8_t>(sizeof(StepParams) + kMaxBatch * sizeof(int32_t), device_, "the step parameters");
    step_host_ = PinnedBuffer(step_.bytes());
    logits_host_ = PinnedBuffer(s.logits * sizeof(float));
    top_host_ = PinnedBuffer(s.top_bytes());
  }

  const StepParams* params() const { return reinterpret_cast<const StepParams*>(step_.get()); }
  const int32_t* tokens() const { return reinterpret_cast<const int32_t*>(step_.get() + sizeof(StepParams)); }
  // Sums of squares per (token, block) left by the residual GEMVs: the FFN-down one's feed the
  // next attn_norm (and the final norm), the attention-output one's the ffn_norm.
  float* attn_partials() const { return ss_.get(); }
  float* ffn_partials() const { return ss_.get() + size_t(kGemvMaxTokens) * sizes_.n_partials; }

  // RoPE factors computed on the host exactly as the CPU backend computes them (std::pow in
  // float), so both backends rotate by the same angles.
  void upload_step(const ForwardRequest& req, int top_k) {
    StepParams* p = step_host_.get<StepParams>();
    std::memset(p, 0, sizeof(StepParams));
    p->start_pos = req.start_pos;
    p->n_tokens = req.n_tokens;
    p->top_k = std::max(top_k, 1);
    const int hd = c_.head_dim;
    const float base = req.rope_base;
    p->theta_scale = std::pow(base, -2.0f / float(hd));
    for (int i = 0; i < hd / 2; i++) p->inv_freq[i] = 1.0f / std::pow(base, float(2 * i) / float(hd));
    std::memcpy(step_host_.get<uint8_t>() + sizeof(StepParams), req.tokens, size_t(req.n_tokens) * sizeof(int32_t));
    check(cudaMemcpyAsync(step_.get(), step_host_.get(), sizeof(StepParams) + size_t(req.n_tokens) * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_.get()),
          "step upload");
  }

  // y = W x (or y += W x) for nt rows of x, converting x to what W's kernel reads. ss_out: the
  // decode GEMV's sums of squares for a following fused norm (residual epilogue only).
  void matmul(const DevMatrix& w, const float* x, int nt, float* y, int ldy, Epilogue epilogue, float* ss_out = nullptr) {
    cudaStream_t s = stream_.get();
    const Q8Act xq{xq_.get(), xd_.get()};
    if (w.type == WType::Blocks && nt > kGemvMaxTokens) {
      to_f16(x, x16_.get(), size_t(nt) * w.cols, s);
      gemm_blocks(w, nt, y, ldy, epilogue);
      return;
    }
    if (reads_q8_activations(w.type)) quantize_q8(x, xq, nt, w.cols, s);
    if (nt <= kGemvMaxTokens) {
      gemv(w, x, xq, nt, y, ldy, epilogue, s, {}, ss_out);
    } else {
      if (w.type != WType::Q8) to_f16(x, x16_.get(), size_t(nt) * w.cols, s);
      gemm(w, x16_.get(), xq, nt, y, ldy, epilogue, s);
    }
  }

  // Prefill with a Blocks matrix (x16_ holds the activations): each segment is dequantized to fp16
  // a slice of rows at a time and multiplied with the F16 GEMM into its columns of y; the weights
  // stay in their type. Estimated cost for a 7B model and a 1024-token chunk: ~35 GB of traffic
  // (blocks read, fp16 written and read back), ~9 ms next to 25-40 ms of GEMM, more for shorter
  // chunks; logits of many rows (kLogitsRows at a time) decode the output head each time. A
  // GEMM that dequantizes its tiles in shared memory would remove it (NOTES.md).
  void gemm_blocks(const DevMatrix& w, int nt, float* y, int ldy, Epilogue epilogue) {
    cudaStream_t s = stream_.get();
    const int slice = int(std::max<size_t>(1, sizes_.dequant / size_t(w.cols)));
    for (int i = 0; i < w.n_segments; i++) {
      const BlockSegment& seg = w.segments[i];
      for (int r0 = 0; r0 < seg.rows; r0 += slice) {
        const int rows = std::min(slice, seg.rows - r0);
        dequantize_f16(w, i, r0, rows, dequant_.get(), s);
        gemm(dense_matrix(WType::F16, rows, w.cols, dequant_.get()), x16_.get(), {}, nt, y + seg.first_row + r0, ldy,
             epilogue, s);
      }
    }
  }

  // h = SwiGLU(W x) for a [gate; up] matrix in decode, x as gemv reads it for W's type. Blocks
  // matrices (their gate and up rows may differ in type) go through the gate|up buffer.
  void swiglu_gemv(const DevMatrix& w, const float* x, const Q8Act& xq, int nt, float* h) {
    cudaStream_t s = stream_.get();
    if (w.type != WType::Blocks) return gemv_swiglu(w, x, xq, nt, h, s);
    gemv(w, x, xq, nt, gu_.get(), w.rows, Epilogue::Store, s);
    swiglu(gu_.get(), nt, w.rows / 2, h, s);
  }

  // y = W rmsnorm(x) (swiglu: h = SwiGLU of the [gate; up] matrix, decode only). In decode with
  // fusion on, the norm costs no kernel of its own for float weights when `partials` (the sums of
  // squares the previous residual GEMV left) exist, and shares one with the quantization for Q8.
  void norm_matmul(const DevMatrix& w, const float* x, const float* norm_w, const float* partials, int nt, float* y,
                   int ldy, bool swiglu) {
    cudaStream_t s = stream_.get();
    const Q8Act xq{xq_.get(), xd_.get()};
    const bool decode = nt <= kGemvMaxTokens;
    if (swiglu && !decode) throw Error("internal: fused SwiGLU GEMV is for decode batches");
    if (decode && fuse_) {
      if (reads_q8_activations(w.type)) {
        rmsnorm_q8(x, norm_w, nullptr, xq, nt, c_.dim, c_.norm_eps, s);
        if (swiglu)
          swiglu_gemv(w, nullptr, xq, nt, y);
        else
          gemv(w, nullptr, xq, nt, y, ldy, Epilogue::Store, s);
        return;
      }
      if (partials) {
        const NormIn norm{norm_w, partials, sizes_.n_partials, c_.norm_eps};
        if (swiglu)
          gemv_swiglu(w, x, xq, nt, y, s, norm);
        else
          gemv(w, x, xq, nt, y, ldy, Epilogue::Store, s, norm);
        return;
      }
    }
    rmsnorm(x, norm_w, xn_.get(), nt, c_.dim, c_.norm_eps, s);
    if (swiglu) {
      if (reads_q8_activations(w.type)) quantize_q8(xn_.get(), xq, nt, c_.dim, s);
      swiglu_gemv(w, xn_.get(), xq, nt, y);
    } else {
      matmul(w, xn_.get(), nt, y, ldy, Epilogue::Store);
    }
  }

  void enqueue_layers(CudaKVCache& cache, int nt) {
    cudaStream_t s = stream_.get();
    const int dim = c_.dim, hd = c_.head_dim, ffn = c_.ffn_dim;
    const int q_dim = c_.n_heads * hd, kv_dim = c_.n_kv_heads * hd;
    const AttentionShape shape{nt, c_.n_heads, c_.n_kv_heads, hd};
    const bool pairwise = c_.rope_layout == RopeLayout::Pairwise;
    const bool decode = nt <= kGemvMaxTokens;
    // Sums of squares flow from each residual GEMV to the next norm (decode, fusion on).
    float* ss_attn = decode && fuse_ ? attn_partials() : nullptr;
    float* ss_ffn = decode && fuse_ ? ffn_partials() : nullptr;
    embed(weights_.tok_embd.view, tokens(), nt, x_.get(), s);
    for (int l = 0; l < c_.n_layers; l++) {
      const DeviceLayer& L = weights_.layers[size_t(l)];
      const KVLayer kv = cache.layer(l);
      norm_matmul(L.wqkv.view, x_.get(), L.attn_norm.get(), l > 0 ? ss_attn : nullptr, nt, qkv_.get(),
                  q_dim + 2 * kv_dim, false);
      rope_store(qkv_.get(), params(), nt, c_.n_heads, pairwise, q_.get(), kv, s);
      if (!decode && flash_supported(hd, kv.type))
        attention_flash(q_.get(), kv, params(), shape, att_.get(), s);
      else
        attention_split(q_.get(), kv, params(), shape, decode ? splits_for(kv.type) : 1, partial_.get(),
                        counters_.get(), att_.get(), s);
      matmul(L.wo.view, att_.get(), nt, x_.get(), dim, Epilogue::Add, ss_ffn);

      if (decode) {
        norm_matmul(L.w13.view, x_.get(), L.ffn_norm.get(), ss_ffn, nt, h_.get(), ffn, true);
      } else {
        norm_matmul(L.w13.view, x_.get(), L.ffn_norm.get(), nullptr, nt, gu_.get(), 2 * ffn, false);
        swiglu(gu_.get(), nt, ffn, h_.get(), s);
      }
      matmul(L.w2.view, h_.get(), nt, x_.get(), dim, Epilogue::Add, ss_attn);
    }
  }

  // Decode splits each row's keys so that one full wave of blocks runs (as many per multiprocessor
  // as the kernel's registers allow for this KV type): at long contexts the KV read dominates a
  // step, and more blocks keep more loads in flight.
  int splits_for(KVType type) {
    int& splits = splits_[int(type)];
    if (splits == 0) {
      const AttentionShape shape{1, c_.n_heads, c_.n_kv_heads, c_.head_dim};
      const int per_sm = std::max(1, attention_split_blocks_per_sm(shape, type));
      splits = std::clamp(per_sm * sm_count_ / c_.n_kv_heads, 1, kMaxSplits);
    }
    return splits;
  }

  // Final norm and output head for rows [r0, r0 + rows) of the batch (decode_batch: the batch ran
  // the decode GEMVs, so their sums of squares exist), logits copied to the pinned buffer if asked.
  void enqueue_head(int r0, int rows, bool decode_batch, bool download) {
    cudaStream_t s = stream_.get();
    const float* partials = decode_batch && fuse_ ? attn_partials() + size_t(r0) * sizes_.n_partials : nullptr;
    norm_matmul(weights_.output.view, x_.get() + size_t(r0) * c_.dim, weights_.output_norm.get(), partials, rows,
                logits_.get(), c_.vocab_size, false);
    if (download)
      check(cudaMemcpyAsync(logits_host_.get(), logits_.get(), size_t(rows) * c_.vocab_size * sizeof(float),
                            cudaMemcpyDeviceToHost, s),
            "logits download");
  }

  // The best params()->top_k logits of the head's first row, (values, ids) to the pinned buffer.
  void enqueue_top() {
    cudaStream_t s = stream_.get();
    float* values = reinterpret_cast<float*>(top_.get());
    int32_t* ids = reinterpret_cast<int32_t*>(values + kMaxTopK);
    top_k(logits_.get(), c_.vocab_size, params(), top_scratch_.get(), values, ids, s);
    check(cudaMemcpyAsync(top_host_.get(), top_.get(), top_.bytes(), cudaMemcpyDeviceToHost, s), "top-k download");
  }

  // Everything of a one-token step reads its position, token and k from step_, so one capture
  // per cache and variant (its buffers are baked in) serves every later step.
  void decode_with_graph(CudaKVCache& cache, bool top) {
    GraphExec& exec_slot = top ? cache.decode_graph_top : cache.decode_graph;
    if (!exec_slot.ready()) {
      cudaStream_t s = stream_.get();
      check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
      cudaGraph_t graph = nullptr;
      try {
        enqueue_layers(cache, 1);
        enqueue_head(0, 1, true, !top);
        if (top) enqueue_top();
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
      exec_slot.adopt(exec);
    }
    check(cudaGraphLaunch(exec_slot.get(), stream_.get()), "cudaGraphLaunch");
  }

  const Model& model_;
  const ModelConfig& c_;
  int device_;
  int threads_;
  DeviceScope scope_;
  Stream stream_;
  ScratchSizes sizes_;
  int sm_count_;
  int splits_[4] = {};  // per KVType, splits_for()
  bool use_graphs_ = true;
  bool fuse_ = true;
  std::mutex mutex_;
  DeviceWeights weights_;
  DeviceArray<float> x_, xn_, qkv_, q_, att_, gu_, h_, xd_, partial_, logits_, ss_;
  DeviceArray<uint16_t> x16_;
  DeviceArray<uint16_t> dequant_;  // Blocks prefill: fp16 slices of a matrix (gemm_blocks)
  DeviceArray<int8_t> xq_;
  DeviceArray<int> counters_;
  DeviceArray<unsigned long long> top_scratch_;
  DeviceArray<uint8_t> top_, step_;
  PinnedBuffer step_host_, logits_host_, top_host_;
};

}  // namespace

void bench_fill_cache(KVCache& cache, Backend& backend, int n, uint32_t seed) {
  auto* c = dynamic_cast<CudaKVCache*>(&cache);
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  if (!c || !b) throw Error("bench_fill_cache needs a CUDA backend and one of its caches");
  b->fill_cache(*c, n, seed);
}

size_t required_bytes(const Model& model) {
  check_supported(model);
  // Weights, working buffers, the upload staging buffer, a first 512-position KV cache, slack.
  const ModelConfig& c = model.config;
  const size_t kv = size_t(2) * c.n_layers * 512 * c.n_kv_heads * c.head_dim * 2;
  return weight_bytes(model) + ScratchSizes(c, has_block_weights(model)).bytes() + (size_t(64) << 20) + kv + kSlackBytes;
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
