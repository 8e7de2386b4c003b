#include "model/fingerprint.h"

#include <algorithm>
#include <cstdio>

#include "model/model.h"
#include "util/hash.h"

namespace ilm {
namespace {

// Bytes hashed at each of a tensor's start, middle and end. A fine-tune changes nearly every
// weight, so three small windows per tensor tell two checkpoints of one architecture apart.
constexpr size_t kSampleBytes = 4096;

void hash_config(Hash64& h, const ModelConfig& c) {
  for (int v : {c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.context_length})
    h.value(int32_t(v));
  h.value(c.rope_theta);
  h.value(c.norm_eps);
  h.value(uint32_t(c.rope_layout));
}

void hash_vocab(Hash64& h, const Vocab& v) {
  h.value(uint64_t(v.pieces.size()));
  for (const auto& piece : v.pieces) h.string(piece);
  h.bytes(v.scores.data(), v.scores.size() * sizeof(float));
  h.bytes(v.types.data(), v.types.size() * sizeof(PieceType));
  for (int32_t id : {v.unk_id, v.bos_id, v.eos_id}) h.value(id);
}

void hash_floats(Hash64& h, const std::vector<float>& values) {
  h.value(uint64_t(values.size()));
  h.bytes(values.data(), values.size() * sizeof(float));
}

void hash_tensor(Hash64& h, const Tensor& t) {
  h.value(uint8_t(t.empty() ? 0 : 1));
  if (t.empty()) return;
  h.string(t.name);
  h.value(uint32_t(t.type));
  h.value(int32_t(t.n_dims));
  h.value(t.ne[0]);
  h.value(t.ne[1]);
  h.value(uint64_t(t.nbytes));
  const size_t window = std::min(kSampleBytes, t.nbytes);
  for (size_t at : {size_t(0), (t.nbytes - window) / 2, t.nbytes - window}) h.bytes(t.data + at, window);
}

}  // namespace

uint64_t model_fingerprint(const Model& model) {
  Hash64 h;
  hash_config(h, model.config);
  hash_vocab(h, model.vocab);
  const ModelWeights& w = model.weights;
  hash_tensor(h, w.tok_embd);
  hash_tensor(h, w.output);
  hash_floats(h, w.output_norm);
  h.value(uint64_t(w.layers.size()));
  for (const LayerWeights& L : w.layers) {
    hash_floats(h, L.attn_norm);
    hash_floats(h, L.ffn_norm);
    for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.w1, &L.w3, &L.w2}) hash_tensor(h, *t);
  }
  return h.digest();
}

std::string fingerprint_hex(uint64_t fingerprint) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fingerprint));
  return buf;
}

}  // namespace ilm
