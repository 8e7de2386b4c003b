#include "cuda/cuda_weights.h"

#include <algorithm>
#include <cstring>

#include "cuda/block_types.h"

namespace ilm::cuda {
namespace {

constexpr size_t kStageBytes = size_t(64) << 20;

// Rows [first, first + count) of a host tensor; a device matrix is a list of these.
struct RowRange {
  const Tensor* t;
  int64_t first, count;
};

WType device_type(const Tensor& t) {
  BlockType block = BlockType::Q4_0;
  switch (t.type) {
    case DType::F32: return WType::F32;
    case DType::F16: return WType::F16;
    case DType::BF16: return WType::BF16;
    case DType::Q8_0: return WType::Q8;
    default:
      if (block_type_of(t.type, &block)) return WType::Blocks;
      throw Error("tensor " + t.name + " has type " + dtype_name(t.type) + ", which the CUDA backend does not support (use the CPU)");
  }
}

size_t device_bytes(WType type, int64_t rows, int64_t cols) {
  const size_t n = size_t(rows) * size_t(cols);
  switch (type) {
    case WType::F32: return n * 4;
    case WType::F16:
    case WType::BF16: return n * 2;
    case WType::Q8: return n + n / 16;  // int8 quants + one fp16 scale per 32
    case WType::Blocks: break;          // blocks_bytes
  }
  return 0;
}

constexpr size_t kSegmentAlign = 16;

// Runs of consecutive parts of one block type: the segments of a Blocks matrix.
struct Segment {
  BlockType type;
  size_t begin, end;  // parts [begin, end)
  int64_t first_row, rows;
  size_t row_bytes, offset;  // offset: into the matrix's allocation
};

std::vector<Segment> block_segments(const std::vector<RowRange>& parts) {
  std::vector<Segment> out;
  int64_t row = 0;
  size_t offset = 0;
  for (size_t i = 0; i < parts.size(); i++) {
    BlockType type = BlockType::Q4_0;
    if (!block_type_of(parts[i].t->type, &type)) throw Error("internal: tensor " + parts[i].t->name + " is not a block type");
    if (out.empty() || out.back().type != type) {
      if (!out.empty()) offset += (size_t(out.back().rows) * out.back().row_bytes + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign;
      out.push_back({type, i, i, row, 0, parts[i].t->row_bytes(), offset});
    }
    out.back().end = i + 1;
    out.back().rows += parts[i].count;
    row += parts[i].count;
  }
  return out;
}

size_t blocks_bytes(const std::vector<Segment>& segments) {
  const Segment& last = segments.back();
  return last.offset + size_t(last.rows) * last.row_bytes;
}

// Q | K | V rows. HF's packed wqkv holds, per KV group g, G query heads then K then V.
std::vector<RowRange> qkv_rows(const ModelConfig& c, const LayerWeights& L) {
  if (L.wqkv.empty()) return {{&L.wq, 0, L.wq.rows()}, {&L.wk, 0, L.wk.rows()}, {&L.wv, 0, L.wv.rows()}};
  const int G = c.n_heads / c.n_kv_heads;
  const int64_t hd = c.head_dim;
  std::vector<RowRange> out;
  for (int h = 0; h < c.n_heads; h++) out.push_back({&L.wqkv, (int64_t(h / G) * (G + 2) + h % G) * hd, hd});
  for (int g = 0; g < c.n_kv_heads; g++) out.push_back({&L.wqkv, (int64_t(g) * (G + 2) + G) * hd, hd});
  for (int g = 0; g < c.n_kv_heads; g++) out.push_back({&L.wqkv, (int64_t(g) * (G + 2) + G + 1) * hd, hd});
  return out;
}

std::vector<RowRange> whole(const Tensor& t) { return {{&t, 0, t.rows()}}; }

std::vector<RowRange> gate_up_rows(const LayerWeights& L) { return {{&L.w1, 0, L.w1.rows()}, {&L.w3, 0, L.w3.rows()}}; }

// Every part of one device matrix must share its width and type; low-bit block types may differ
// (up to kMaxSegments runs: Q4_K_M files quantize some layers' V rows to Q6_K).
void check_parts(const std::vector<RowRange>& parts) {
  const Tensor& first = *parts.front().t;
  const WType first_type = device_type(first);
  for (const RowRange& p : parts) {
    const WType type = device_type(*p.t);
    const bool alike = type == WType::Blocks ? first_type == WType::Blocks : p.t->type == first.type;
    if (!alike || p.t->cols() != first.cols())
      throw Error("tensors " + first.name + " and " + p.t->name +
                  " differ in type or width; the CUDA backend needs them alike (use the CPU)");
    if (p.t->cols() % 32 != 0)
      throw Error("tensor " + p.t->name + " has rows of " + std::to_string(p.t->cols()) +
                  " values; the CUDA kernels need a multiple of 32");
  }
  if (first_type == WType::Blocks && block_segments(parts).size() > size_t(kMaxSegments))
    throw Error("tensor " + first.name + " and the tensors stacked with it alternate between more than " +
                std::to_string(kMaxSegments) + " block types; the CUDA backend does not handle that (use the CPU)");
}

size_t parts_bytes(const std::vector<RowRange>& parts) {
  if (device_type(*parts.front().t) == WType::Blocks) return blocks_bytes(block_segments(parts));
  int64_t rows = 0;
  for (const RowRange& p : parts) rows += p.count;
  return device_bytes(device_type(*parts.front().t), rows, parts.front().t->cols());
}

template <typename Fn>
void for_each_matrix(const Model& model, Fn&& fn) {
  const ModelWeights& w = model.weights;
  fn(whole(w.tok_embd));
  fn(whole(w.output));
  for (const LayerWeights& L : w.layers) {
    fn(qkv_rows(model.config, L));
    fn(whole(L.wo));
    fn(gate_up_rows(L));
    fn(whole(L.w2));
  }
}

// Streams rows through two pinned buffers: the host copy of one chunk overlaps the transfer of
// the other. Q8_0 chunks land in a device staging buffer and are split into quants and scales.
class Uploader {
 public:
  Uploader(int device, cudaStream_t stream) : device_(device), stream_(stream) {
    for (auto& s : stage_) s = PinnedBuffer(kStageBytes);
  }

  DeviceMatrix matrix(const std::vector<RowRange>& parts, const std::string& what) {
    check_parts(parts);
    const Tensor& first = *parts.front().t;
    const WType type = device_type(first);
    const int64_t cols = first.cols();
    int64_t rows = 0;
    for (const RowRange& p : parts) rows += p.count;
    DeviceMatrix m;
    if (type == WType::Blocks) {
      // The file's blocks as they are, one aligned run per segment.
      const std::vector<Segment> segments = block_segments(parts);
      m.data = DeviceArray<uint8_t>(blocks_bytes(segments), device_, what);
      m.view = dense_matrix(type, int(rows), int(cols), m.data.get());
      m.view.n_segments = int(segments.size());
      for (size_t i = 0; i < segments.size(); i++) {
        const Segment& g = segments[i];
        uint8_t* dst = m.data.get() + g.offset;
        m.view.segments[i] = {g.type, int(g.first_row), int(g.rows), dst, g.row_bytes};
        stream_rows({parts.begin() + g.begin, parts.begin() + g.end}, g.row_bytes, [&](const uint8_t* host, int64_t n, int64_t done) {
          check(cudaMemcpyAsync(dst + size_t(done) * g.row_bytes, host, size_t(n) * g.row_bytes, cudaMemcpyHostToDevice, stream_),
                "weight upload");
        });
      }
    } else if (type == WType::Q8) {
      m.data = DeviceArray<uint8_t>(size_t(rows) * cols, device_, what);
      m.scales = DeviceArray<uint16_t>(size_t(rows) * cols / 32, device_, what);
      if (raw_.size() == 0) raw_ = DeviceArray<uint8_t>(kStageBytes, device_, "the upload staging buffer");
      m.view = dense_matrix(type, int(rows), int(cols), m.data.get(), m.scales.get());
      stream_rows(parts, first.row_bytes(), [&](const uint8_t* host, int64_t n, int64_t done) {
        check(cudaMemcpyAsync(raw_.get(), host, size_t(n) * first.row_bytes(), cudaMemcpyHostToDevice, stream_), "weight upload");
        repack_q8_0(raw_.get(), int(n), int(cols), reinterpret_cast<int8_t*>(m.data.get()) + size_t(done) * cols,
                    m.scales.get() + size_t(done) * cols / 32, stream_);
      });
    } else {
      m.data = DeviceArray<uint8_t>(device_bytes(type, rows, cols), device_, what);
      m.view = dense_matrix(type, int(rows), int(cols), m.data.get());
      stream_rows(parts, first.row_bytes(), [&](const uint8_t* host, int64_t n, int64_t done) {
        check(cudaMemcpyAsync(m.data.get() + size_t(done) * first.row_bytes(), host, size_t(n) * first.row_bytes(),
                              cudaMemcpyHostToDevice, stream_),
              "weight upload");
      });
    }
    bytes_ += m.data.bytes() + m.scales.bytes();
    return m;
  }

  // Copies the parts' rows (row_bytes each) into the pinned buffers in chunks and hands each
  // chunk to send(host, rows, rows sent before it), which enqueues its transfer on stream_; the
  // host copy of one chunk overlaps the transfer of the other.
  template <typename Send>
  void stream_rows(const std::vector<RowRange>& parts, size_t row_bytes, Send&& send) {
    const int64_t chunk_rows = std::max<int64_t>(1, int64_t(kStageBytes / row_bytes));
    if (size_t(chunk_rows) * row_bytes > kStageBytes)
      throw Error("tensor " + parts.front().t->name + " has rows larger than the upload buffer");
    int64_t done = 0;  // rows already sent to the device
    int64_t filled = 0;
    auto flush = [&] {
      if (filled == 0) return;
      send(stage_[buf_].get<uint8_t>(), filled, done);
      check(cudaEventRecord(sent_[buf_].get(), stream_), "cudaEventRecord");
      done += filled;
      filled = 0;
      buf_ ^= 1;
      check(cudaEventSynchronize(sent_[buf_].get()), "weight upload");  // the next buffer is free again
    };
    for (const RowRange& p : parts) {
      for (int64_t r = 0; r < p.count;) {
        const int64_t n = std::min(p.count - r, chunk_rows - filled);
        std::memcpy(stage_[buf_].get<uint8_t>() + size_t(filled) * row_bytes, p.t->row(p.first + r), size_t(n) * row_bytes);
        filled += n;
        r += n;
        if (filled == chunk_rows) flush();
      }
    }
    flush();
  }

  DeviceArray<float> vector(const std::vector<float>& v, const std::string& what) {
    DeviceArray<float> d(v.size(), device_, what);
    check(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "norm upload");
    bytes_ += d.bytes();
    return d;
  }

  void finish() { check(cudaStreamSynchronize(stream_), "weight upload"); }
  size_t bytes() const { return bytes_; }

 private:
  int device_;
  cudaStream_t stream_;
  PinnedBuffer stage_[2];
  Event sent_[2];
  int buf_ = 0;
  DeviceArray<uint8_t> raw_;
  size_t bytes_ = 0;
};

}  // namespace

void check_supported(const Model& model) {
  const ModelConfig& c = model.config;
  const int hd = c.head_dim;
  if (!flash_supported(hd, KVType::F16))  // prefill attention is instantiated for 16, 32, 64, 128
    throw Error("head dimension " + std::to_string(hd) + " is not supported by the CUDA backend (16, 32, 64, 128)");
  if (c.n_heads / c.n_kv_heads > kMaxGqaGroup)
    throw Error(std::to_string(c.n_heads / c.n_kv_heads) + " query heads per KV head is more than the CUDA backend supports (" +
                std::to_string(kMaxGqaGroup) + ")");
  for_each_matrix(model, [](const std::vector<RowRange>& parts) { check_parts(parts); });
}

bool has_block_weights(const Model& model) {
  bool any = false;
  for_each_matrix(model, [&](const std::vector<RowRange>& parts) {
    for (const RowRange& p : parts) any = any || device_type(*p.t) == WType::Blocks;
  });
  return any;
}

size_t weight_bytes(const Model& model) {
  size_t total = 0;
  for_each_matrix(model, [&](const std::vector<RowRange>& parts) { total += parts_bytes(parts); });
  const size_t norms = model.weights.output_norm.size() + model.weights.layers.size() * 2 * size_t(model.config.dim);
  return total + norms * sizeof(float);
}

DeviceWeights upload_weights(const Model& model, int device, cudaStream_t stream) {
  Uploader up(device, stream);
  const ModelWeights& w = model.weights;
  DeviceWeights d;
  d.tok_embd = up.matrix(whole(w.tok_embd), "the token embeddings");
  d.output_norm = up.vector(w.output_norm, "the output norm");
  d.output = up.matrix(whole(w.output), "the output head");
  d.layers.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); l++) {
    const LayerWeights& L = w.layers[l];
    DeviceLayer& D = d.layers[l];
    const std::string name = "layer " + std::to_string(l);
    D.attn_norm = up.vector(L.attn_norm, name);
    D.ffn_norm = up.vector(L.ffn_norm, name);
    D.wqkv = up.matrix(qkv_rows(model.config, L), name);
    D.wo = up.matrix(whole(L.wo), name);
    D.w13 = up.matrix(gate_up_rows(L), name);
    D.w2 = up.matrix(whole(L.w2), name);
  }
  up.finish();
  d.bytes = up.bytes();
  return d;
}

}  // namespace ilm::cuda
