// InternLM2 from a GGUF file written by llama.cpp's converter (or by us): hyperparameters from
// internlm2.* keys, the tokenizer from tokenizer.ggml.*, weights as views into the mapping.
#include <algorithm>
#include <cstring>

#include "model/gguf.h"
#include "model/load_helpers.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace ilm {
namespace load {

namespace {

const char* const kArch = "internlm2";

std::string key(const char* suffix) { return std::string(kArch) + "." + suffix; }

int read_int(const GgufFile& g, const std::string& k, bool required, int fallback) {
  int64_t v;
  if (!g.get_int(k, &v)) {
    if (required) throw Error(g.path() + ": required metadata '" + k + "' is missing");
    return fallback;
  }
  if (v < 0 || v > INT32_MAX)
    throw Error(g.path() + ": metadata '" + k + "' = " + std::to_string(v) + " is out of range");
  return int(v);
}

// llama.cpp allows per-layer arrays for head counts; InternLM2 never uses them.
int read_scalar_int(const GgufFile& g, const std::string& k, bool required, int fallback) {
  const GgufValue* v = g.find(k);
  if (v && v->type == GgufType::Array)
    throw Error(g.path() + ": metadata '" + k + "' is a per-layer array, which InternLM2 does not use");
  return read_int(g, k, required, fallback);
}

FileRopeScaling file_rope_scaling(const GgufFile& g, int context_length) {
  FileRopeScaling s;
  double ours;
  if (g.get_float(key("rope.scaling.dynamic_factor"), &ours)) {
    // Our own key (llama.cpp ignores it): > 0 is dynamic NTK with that factor, 0 means none.
    if (ours == 0) return s;
    s.type = RopeScaling::Dynamic;
    s.factor = float(ours);
    return s;
  }
  std::string type;
  double factor = 0;
  const bool has_factor = g.get_float(key("rope.scaling.factor"), &factor);
  if (g.get_string(key("rope.scaling.type"), &type) && type != "none") {
    if (type == "dynamic") {
      s.type = RopeScaling::Dynamic;
      s.factor = has_factor && factor > 0 ? float(factor) : default_dynamic_factor(context_length);
      return s;
    }
    if (!(type == "linear" && (!has_factor || factor == 1.0))) {
      s.unsupported = "RoPE scaling type '" + type + "'" +
                      (has_factor ? " with factor " + std::to_string(factor) : std::string());
      return s;
    }
  }
  // The official files carry no scaling keys although the models use dynamic NTK.
  s.type = RopeScaling::Dynamic;
  s.factor = default_dynamic_factor(context_length);
  return s;
}

// "F32, F16, ...": the weight types the kernels of this build handle, in ggml id order.
std::string supported_types() {
  std::string out;
  for (uint32_t id = 0; id < 64; id++)
    if (dtype_supported(DType(id))) out += (out.empty() ? "" : ", ") + std::string(dtype_name(DType(id)));
  return out;
}

// The tensor as a typed view, refusing types this build cannot compute with.
Tensor view(const GgufFile& g, const GgufTensorInfo& info) {
  if (!dtype_supported(DType(info.type))) {
    const char* name = ggml_type_name(info.type);
    throw Error(g.path() + ": tensor " + info.name + " has type " + (name ? name : "unknown") +
                ", which this build does not support yet (supported: " + supported_types() + ")");
  }
  for (int d = 2; d < 4; d++)
    if (info.ne[d] != 1)
      throw Error(g.path() + ": tensor " + info.name + " has " + std::to_string(info.n_dims) +
                  " dimensions, expected at most 2");
  Tensor t;
  t.name = info.name;
  t.type = DType(info.type);
  t.n_dims = int(std::min<uint32_t>(info.n_dims, 2));
  t.ne[0] = info.ne[0];
  t.ne[1] = info.ne[1];
  t.data = info.data;
  t.nbytes = info.nbytes;
  return t;
}

// Rows [first, first + count) of a matrix, as a view sharing its bytes.
Tensor row_slice(const Tensor& t, int64_t first, int64_t count, const char* part) {
  Tensor s = t;
  s.name = t.name + "[" + part + "]";
  s.ne[1] = count;
  s.data = t.data + size_t(first) * t.row_bytes();
  s.nbytes = size_t(count) * t.row_bytes();
  return s;
}

}  // namespace

Vocab gguf_vocab(const GgufFile& g) {
  const std::string& p = g.path();
  std::string model;
  if (!g.get_string("tokenizer.ggml.model", &model))
    throw Error(p + ": the file has no tokenizer (tokenizer.ggml.model is missing)");
  if (model != "llama")
    throw Error(p + ": tokenizer type '" + model + "' is not supported (expected 'llama', SentencePiece BPE)");
  const GgufValue* tokens = g.get_array("tokenizer.ggml.tokens", GgufType::String);
  if (!tokens) throw Error(p + ": the file has no tokenizer (tokenizer.ggml.tokens is missing)");
  if (tokens->count == 0 || tokens->count > (1u << 24))
    throw Error(p + ": tokenizer.ggml.tokens has " + std::to_string(tokens->count) + " entries");
  const size_t n = size_t(tokens->count);
  const GgufValue* scores = g.get_array("tokenizer.ggml.scores", GgufType::F32);
  const GgufValue* types = g.get_array("tokenizer.ggml.token_type", GgufType::I32);
  if (scores && scores->count != n)
    throw Error(p + ": tokenizer.ggml.scores has " + std::to_string(scores->count) + " entries, expected " +
                std::to_string(n) + " (one per token)");
  if (types && types->count != n)
    throw Error(p + ": tokenizer.ggml.token_type has " + std::to_string(types->count) +
                " entries, expected " + std::to_string(n) + " (one per token)");

  Vocab v;
  v.pieces.resize(n);
  v.scores.assign(n, 0.0f);
  v.types.assign(n, PieceType::Normal);
  g.for_each_string(*tokens, [&](uint64_t i, std::string_view s) {
    // llama.cpp's converter stores InternLM2's piece "\x00" as U+1F409 (dragon).
    v.pieces[i] = s == "\xF0\x9F\x90\x89" ? std::string(1, '\0') : std::string(s);
  });
  for (size_t i = 0; i < n; i++) {
    if (scores) std::memcpy(&v.scores[i], scores->data + 4 * i, 4);
    if (types) {
      int32_t t;
      std::memcpy(&t, types->data + 4 * i, 4);
      if (t < 0 || t > int32_t(PieceType::Byte))
        throw Error(p + ": token " + std::to_string(i) + " has invalid token type " + std::to_string(t));
      v.types[i] = t == 0 ? PieceType::Normal : PieceType(t);  // 0 = undefined
    }
  }
  int64_t id;
  auto special = [&](const char* k, int32_t& out) {
    if (!g.get_int(k, &id)) return;
    if (id < 0 || uint64_t(id) >= n)
      throw Error(p + ": " + k + " = " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(n) + " tokens)");
    out = int32_t(id);
  };
  special("tokenizer.ggml.bos_token_id", v.bos_id);
  special("tokenizer.ggml.eos_token_id", v.eos_id);
  special("tokenizer.ggml.unknown_token_id", v.unk_id);
  g.get_bool("tokenizer.ggml.add_bos_token", &v.add_bos);
  v.add_dummy_prefix = true;  // llama.cpp's default for SentencePiece files without the key
  g.get_bool("tokenizer.ggml.add_space_prefix", &v.add_dummy_prefix);
  return v;
}

void load_gguf_model(Model& model, const LoadOptions& options, const ProgressFn& progress) {
  GgufFile g(open_weights(model, model.path, options));
  const std::string& p = g.path();

  std::string arch;
  if (!g.get_string("general.architecture", &arch))
    throw Error(p + ": general.architecture is missing; expected 'internlm2'");
  if (arch != kArch)
    throw Error(p + ": unsupported architecture '" + arch + "' (this engine runs InternLM2 / InternLM2.5 "
                "models: 'internlm2')");
  if (!g.get_string("general.name", &model.name) || model.name.empty()) {
    const size_t slash = p.find_last_of('/');
    model.name = p.substr(slash == std::string::npos ? 0 : slash + 1);
    if (model.name.size() > 5 && model.name.compare(model.name.size() - 5, 5, ".gguf") == 0)
      model.name.resize(model.name.size() - 5);
  }

  ModelConfig& c = model.config;
  c.rope_layout = RopeLayout::Pairwise;
  c.dim = read_int(g, key("embedding_length"), true, 0);
  c.n_layers = read_int(g, key("block_count"), true, 0);
  c.ffn_dim = read_scalar_int(g, key("feed_forward_length"), true, 0);
  c.n_heads = read_scalar_int(g, key("attention.head_count"), true, 0);
  c.n_kv_heads = read_scalar_int(g, key("attention.head_count_kv"), false, c.n_heads);
  c.context_length = read_int(g, key("context_length"), true, 0);
  double f;
  if (g.get_float(key("rope.freq_base"), &f)) c.rope_theta = float(f);
  if (g.get_float(key("attention.layer_norm_rms_epsilon"), &f)) c.norm_eps = float(f);

  const GgufTensorInfo* embd_info = g.tensor("token_embd.weight");
  if (!embd_info) throw Error(p + ": missing tensor token_embd.weight");
  c.vocab_size = int(std::min<int64_t>(embd_info->ne[1], INT32_MAX));
  check_config(c, p);
  const int rope_dims = read_int(g, key("rope.dimension_count"), false, c.head_dim);
  if (rope_dims != c.head_dim)
    throw Error(p + ": rope.dimension_count " + std::to_string(rope_dims) + " differs from the head dimension " +
                std::to_string(c.head_dim) + " (partial RoPE is not used by InternLM2)");
  const int declared_vocab = read_int(g, key("vocab_size"), false, c.vocab_size);
  if (declared_vocab != c.vocab_size)
    throw Error(p + ": " + key("vocab_size") + " is " + std::to_string(declared_vocab) +
                " but token_embd.weight has " + std::to_string(c.vocab_size) + " rows");
  resolve_rope_scaling(c, file_rope_scaling(g, c.context_length), options, p);

  model.vocab = gguf_vocab(g);
  check_vocab(model.vocab, c.vocab_size, p);

  // Name every missing tensor at once; a fused attn_qkv stands for attn_q/k/v.
  std::vector<std::string> missing;
  auto need = [&](const std::string& name) {
    if (!g.tensor(name)) missing.push_back(name);
  };
  need("output_norm.weight");
  need("output.weight");
  for (int l = 0; l < c.n_layers; l++) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_norm", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"})
      need(b + n + ".weight");
    if (!g.tensor(b + "attn_qkv.weight"))
      for (const char* n : {"attn_q", "attn_k", "attn_v"}) need(b + n + ".weight");
  }
  if (!missing.empty()) throw Error(p + ": missing tensors: " + name_list(missing));

  const int64_t dim = c.dim, hd = c.head_dim;
  const int64_t q_rows = int64_t(c.n_heads) * hd, kv_rows = int64_t(c.n_kv_heads) * hd;
  const size_t total = 3 + size_t(c.n_layers) * 9;
  size_t done = 0;
  auto matrix = [&](const std::string& name, int64_t in, int64_t out) {
    Tensor t = view(g, *g.tensor(name));
    check_shape(t, in, out, p);
    align_tensor(model, t);
    progress(double(++done) / total);
    return t;
  };
  auto norm = [&](const std::string& name) {
    std::vector<float> v = norm_to_f32(view(g, *g.tensor(name)), dim, p);
    progress(double(++done) / total);
    return v;
  };

  ModelWeights& w = model.weights;
  w.tok_embd = matrix("token_embd.weight", dim, c.vocab_size);
  w.output_norm = norm("output_norm.weight");
  w.output = matrix("output.weight", dim, c.vocab_size);
  w.layers.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; l++) {
    LayerWeights& L = w.layers[size_t(l)];
    const std::string b = "blk." + std::to_string(l) + ".";
    L.attn_norm = norm(b + "attn_norm.weight");
    if (g.tensor(b + "attn_qkv.weight")) {
      // llama.cpp's fused layout: all Q rows, then all K rows, then all V rows.
      const Tensor qkv = matrix(b + "attn_qkv.weight", dim, q_rows + 2 * kv_rows);
      L.wq = row_slice(qkv, 0, q_rows, "q");
      L.wk = row_slice(qkv, q_rows, kv_rows, "k");
      L.wv = row_slice(qkv, q_rows + kv_rows, kv_rows, "v");
      done += 2;
    } else {
      L.wq = matrix(b + "attn_q.weight", dim, q_rows);
      L.wk = matrix(b + "attn_k.weight", dim, kv_rows);
      L.wv = matrix(b + "attn_v.weight", dim, kv_rows);
    }
    L.wo = matrix(b + "attn_output.weight", q_rows, dim);
    L.ffn_norm = norm(b + "ffn_norm.weight");
    L.w1 = matrix(b + "ffn_gate.weight", dim, c.ffn_dim);
    L.w3 = matrix(b + "ffn_up.weight", dim, c.ffn_dim);
    L.w2 = matrix(b + "ffn_down.weight", c.ffn_dim, dim);
  }
}

}  // namespace load
}  // namespace ilm
