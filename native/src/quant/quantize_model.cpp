#include "quant/quantize_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "cpu/thread_pool.h"
#include "model/gguf.h"
#include "model/model.h"
#include "quant/gguf_writer.h"
#include "quant/reference.h"
#include "util/error.h"
#include "util/json.h"
#include "util/mapped_file.h"

namespace ilm::quant {
namespace {

// llama.cpp's file types (general.file_type values) and the type most of their tensors get.
struct FileType {
  const char* name;
  uint32_t id;
  DType base;
};
constexpr FileType kFileTypes[] = {
    {"Q8_0", 7, DType::Q8_0},    {"Q4_0", 2, DType::Q4_0},    {"Q5_0", 8, DType::Q5_0},
    {"Q2_K", 10, DType::Q2_K},   {"Q3_K_M", 12, DType::Q3_K}, {"Q4_K_M", 15, DType::Q4_K},
    {"Q5_K_M", 17, DType::Q5_K}, {"Q6_K", 18, DType::Q6_K},   {"Q4_1", 3, DType::Q4_1},
    {"Q5_1", 9, DType::Q5_1},
};

const FileType& file_type(const std::string& name) {
  std::string upper;
  for (char c : name) upper += char(std::toupper(static_cast<unsigned char>(c)));
  for (const FileType& f : kFileTypes)
    if (upper == f.name) return f;
  throw Error("unknown quantization type '" + name + "' (supported: " + quantize_type_names() + ")");
}

enum class Role { TokenEmbd, Output, Norm, AttnQ, AttnK, AttnV, AttnOut, FfnGate, FfnUp, FfnDown };

// llama.cpp's "more bits" layers of the _M mixes: the first and last eighth, and every third in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The type llama.cpp's llama_tensor_get_type gives a tensor of an InternLM2 model (no importance
// matrix, one expert, untied embeddings), including its fallbacks for rows that do not fill blocks.
DType tensor_type(const FileType& ft, Role role, int layer, int n_layers, int n_gqa, int64_t cols) {
  const std::string f = ft.name;
  DType t = ft.base;
  switch (role) {
    case Role::Output:
      if (cols % dtype_block_size(t) != 0) t = DType::Q8_0;
      else if (t != DType::Q8_0) t = DType::Q6_K;
      break;
    case Role::AttnV:
      if (f == "Q2_K") t = n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
      else if (f == "Q3_K_M") t = layer < 2 ? DType::Q5_K : DType::Q4_K;
      else if ((f == "Q4_K_M" || f == "Q5_K_M") && use_more_bits(layer, n_layers)) t = DType::Q6_K;
      break;
    case Role::FfnDown:
      if (f == "Q2_K") t = DType::Q3_K;
      else if (f == "Q3_K_M") t = layer < n_layers / 16 ? DType::Q5_K : DType::Q4_K;
      else if ((f == "Q4_K_M" || f == "Q5_K_M") && use_more_bits(layer, n_layers)) t = DType::Q6_K;
      break;
    case Role::AttnOut:
      if (f == "Q2_K") t = DType::Q3_K;
      else if (f == "Q3_K_M") t = DType::Q4_K;
      break;
    case Role::Norm: return DType::F32;
    default: break;
  }
  if (cols % dtype_block_size(t) != 0) {
    switch (t) {
      case DType::Q2_K:
      case DType::Q3_K: t = DType::Q4_0; break;
      case DType::Q4_K: t = DType::Q5_0; break;
      case DType::Q5_K: t = DType::Q5_1; break;
      case DType::Q6_K: t = DType::Q8_0; break;
      default: break;
    }
    if (cols % dtype_block_size(t) != 0) t = DType::F16;
  }
  return t;
}

// Which source row feeds output row r. HF checkpoints pack Q, K and V per KV group (G query heads,
// then K, then V) and rotate halves; llama.cpp's converter splits them and permutes Q and K rows
// within each head (row 2j + t takes row t * hd/2 + j) so that pairwise RoPE applies.
struct RowMap {
  enum Kind { Identity, PackedQ, PackedK, PackedV } kind = Identity;
  int64_t hd = 0, G = 0;

  int64_t operator()(int64_t r) const {
    if (kind == Identity) return r;
    const int64_t head = r / hd, i = r % hd;
    const int64_t within = kind == PackedV ? i : (i % 2) * (hd / 2) + i / 2;
    const int64_t group = kind == PackedQ ? head / G : head;
    const int64_t slot = kind == PackedQ ? head % G : kind == PackedK ? G : G + 1;
    return (group * (G + 2) + slot) * hd + within;
  }
};

struct Plan {
  std::string name;
  DType type = DType::F32;
  int n_dims = 2;
  int64_t cols = 0, rows = 1;
  const Tensor* src = nullptr;          // matrices
  RowMap map;
  const std::vector<float>* vec = nullptr;  // norms (already f32)
};

// llama.cpp's quantized files list the non-layer tensors first, then each layer's, by name.
std::vector<Plan> plan_tensors(const Model& m, const FileType& ft, bool leave_output) {
  const ModelConfig& c = m.config;
  const int n_gqa = c.n_heads / c.n_kv_heads;
  const int64_t hd = c.head_dim, q_rows = int64_t(c.n_heads) * hd, kv_rows = int64_t(c.n_kv_heads) * hd;
  std::vector<Plan> plans;
  auto matrix = [&](const std::string& name, Role role, int layer, const Tensor& t, int64_t rows, RowMap map) {
    Plan p;
    p.name = name;
    p.cols = t.cols();
    p.rows = rows;
    p.src = &t;
    p.map = map;
    p.type = role == Role::Output && leave_output ? t.type : tensor_type(ft, role, layer, c.n_layers, n_gqa, p.cols);
    plans.push_back(p);
  };
  auto norm = [&](const std::string& name, const std::vector<float>& v) {
    Plan p;
    p.name = name;
    p.n_dims = 1;
    p.cols = int64_t(v.size());
    p.vec = &v;
    plans.push_back(p);
  };
  const ModelWeights& w = m.weights;
  matrix("output.weight", Role::Output, -1, w.output, w.output.rows(), {});
  norm("output_norm.weight", w.output_norm);
  matrix("token_embd.weight", Role::TokenEmbd, -1, w.tok_embd, w.tok_embd.rows(), {});
  for (int l = 0; l < c.n_layers; l++) {
    const LayerWeights& L = w.layers[size_t(l)];
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool packed = !L.wqkv.empty();
    const Tensor& q = packed ? L.wqkv : L.wq;
    const Tensor& k = packed ? L.wqkv : L.wk;
    const Tensor& v = packed ? L.wqkv : L.wv;
    auto packed_map = [&](RowMap::Kind kind) { return packed ? RowMap{kind, hd, n_gqa} : RowMap{}; };
    matrix(b + "attn_k.weight", Role::AttnK, l, k, kv_rows, packed_map(RowMap::PackedK));
    norm(b + "attn_norm.weight", L.attn_norm);
    matrix(b + "attn_output.weight", Role::AttnOut, l, L.wo, L.wo.rows(), {});
    matrix(b + "attn_q.weight", Role::AttnQ, l, q, q_rows, packed_map(RowMap::PackedQ));
    matrix(b + "attn_v.weight", Role::AttnV, l, v, kv_rows, packed_map(RowMap::PackedV));
    matrix(b + "ffn_down.weight", Role::FfnDown, l, L.w2, L.w2.rows(), {});
    matrix(b + "ffn_gate.weight", Role::FfnGate, l, L.w1, L.w1.rows(), {});
    norm(b + "ffn_norm.weight", L.ffn_norm);
    matrix(b + "ffn_up.weight", Role::FfnUp, l, L.w3, L.w3.rows(), {});
  }
  return plans;
}

void check_sources(const Model& m, const std::vector<Plan>& plans) {
  for (const Plan& p : plans) {
    if (!p.src) continue;
    const DType t = p.src->type;
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
      throw Error(m.path + ": tensor " + p.src->name + " is " + dtype_name(t) +
                  "; quantize needs F32, F16 or BF16 weights (a Hugging Face checkpoint or an F16/F32 GGUF), "
                  "since re-quantizing already quantized weights compounds their error");
  }
}

// ---------------------------------------------------------------- metadata

void add_model_keys(GgufWriter& out, const Model& m, const FileType& ft) {
  const ModelConfig& c = m.config;
  const std::string a = "internlm2.";
  out.add_string("general.architecture", "internlm2");
  out.add_string("general.type", "model");
  out.add_string("general.name", m.name);
  out.add_u32(a + "context_length", uint32_t(c.context_length));
  out.add_u32(a + "embedding_length", uint32_t(c.dim));
  out.add_u32(a + "block_count", uint32_t(c.n_layers));
  out.add_u32(a + "feed_forward_length", uint32_t(c.ffn_dim));
  out.add_f32(a + "rope.freq_base", c.rope_theta);
  out.add_u32(a + "attention.head_count", uint32_t(c.n_heads));
  out.add_u32(a + "attention.head_count_kv", uint32_t(c.n_kv_heads));
  out.add_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
  out.add_u32("general.file_type", ft.id);
  out.add_u32("general.quantization_version", 2);
}

// Dynamic NTK goes under our own key: llama.cpp aborts on rope.scaling.type "dynamic" and ignores
// keys it does not know (REFERENCE.md). An HF config always says whether it scales; a GGUF source
// keeps its silence (the loader's default applies) unless it said something.
void add_rope_scaling(GgufWriter& out, const Model& m, const GgufFile* source) {
  const ModelConfig& c = m.config;
  const std::string ours = "internlm2.rope.scaling.dynamic_factor";
  std::string type;
  const bool stated = !source || source->find(ours) || source->get_string("internlm2.rope.scaling.type", &type);
  if (stated) out.add_f32(ours, c.rope_scaling == RopeScaling::Dynamic ? c.rope_factor : 0.0f);
}

// Tokenizer keys of a GGUF source, copied as they are.
void copy_gguf_vocab(GgufWriter& out, const GgufFile& g) {
  std::string s;
  out.add_string("tokenizer.ggml.model", "llama");
  if (g.get_string("tokenizer.ggml.pre", &s)) out.add_string("tokenizer.ggml.pre", s);
  const GgufValue* tokens = g.get_array("tokenizer.ggml.tokens", GgufType::String);
  std::vector<std::string> list;
  if (tokens) g.for_each_string(*tokens, [&](uint64_t, std::string_view t) { list.emplace_back(t); });
  out.add_string_array("tokenizer.ggml.tokens", list);
  if (const GgufValue* v = g.get_array("tokenizer.ggml.scores", GgufType::F32)) {
    std::vector<float> f(v->count);
    std::memcpy(f.data(), v->data, f.size() * 4);
    out.add_f32_array("tokenizer.ggml.scores", f);
  }
  if (const GgufValue* v = g.get_array("tokenizer.ggml.token_type", GgufType::I32)) {
    std::vector<int32_t> t(v->count);
    std::memcpy(t.data(), v->data, t.size() * 4);
    out.add_i32_array("tokenizer.ggml.token_type", t);
  }
  bool b;
  if (g.get_bool("tokenizer.ggml.add_space_prefix", &b)) out.add_bool("tokenizer.ggml.add_space_prefix", b);
  int64_t id;
  for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                        "tokenizer.ggml.padding_token_id"})
    if (g.get_int(k, &id)) out.add_u32(k, uint32_t(id));
  for (const char* k : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"})
    if (g.get_bool(k, &b)) out.add_bool(k, b);
  if (g.get_string("tokenizer.chat_template", &s)) out.add_string("tokenizer.chat_template", s);
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The vocabulary as llama.cpp's convert_hf_to_gguf.py writes InternLM2's: piece "\x00" as U+1F409,
// SentencePiece types except user-defined (written as normal), [UNUSED_TOKEN_n] as unused, added
// tokens with score -1000 (control when special), and <|im_end|> as eos when the model has it.
void add_hf_vocab(GgufWriter& out, const Model& m) {
  const Vocab& v = m.vocab;
  const std::string cfg_path = m.path + "/tokenizer_config.json";
  Json cfg;
  if (is_file(cfg_path)) {
    auto file = MappedFile::open(cfg_path);
    cfg = Json::parse(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), cfg_path);
  }
  std::set<int64_t> added;
  if (const Json* dec = cfg.is_object() ? cfg.find("added_tokens_decoder") : nullptr; dec && dec->is_object())
    for (const auto& [key, tok] : dec->members()) added.insert(std::stoll(key));

  const size_t n = std::max<size_t>(v.pieces.size(), size_t(m.config.vocab_size));
  std::vector<std::string> tokens(n);
  std::vector<float> scores(n, 0.0f);
  std::vector<int32_t> types(n, int32_t(PieceType::Unused));
  int32_t eos = v.eos_id;
  for (size_t i = 0; i < n; i++) {
    if (i >= v.pieces.size()) {
      tokens[i] = "[PAD" + std::to_string(i) + "]";
      continue;
    }
    const std::string& piece = v.pieces[i];
    tokens[i] = piece == std::string(1, '\0') ? "\xF0\x9F\x90\x89" : piece;
    scores[i] = v.scores[i];
    PieceType t = v.types[i] == PieceType::UserDefined ? PieceType::Normal : v.types[i];
    if (piece.rfind("[UNUSED", 0) == 0) t = PieceType::Unused;
    if (added.count(int64_t(i))) {
      scores[i] = -1000.0f;
      t = v.types[i] == PieceType::Control ? PieceType::Control : PieceType::UserDefined;
      if (piece == "<|im_end|>") eos = int32_t(i);
    }
    types[i] = int32_t(t);
  }
  out.add_string("tokenizer.ggml.model", "llama");
  out.add_string("tokenizer.ggml.pre", "default");
  out.add_string_array("tokenizer.ggml.tokens", tokens);
  out.add_f32_array("tokenizer.ggml.scores", scores);
  out.add_i32_array("tokenizer.ggml.token_type", types);
  out.add_bool("tokenizer.ggml.add_space_prefix", v.add_dummy_prefix);
  out.add_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos_id));
  out.add_u32("tokenizer.ggml.eos_token_id", uint32_t(eos));
  out.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk_id));
  auto token_of = [&](const char* key) -> int64_t {
    const Json* t = cfg.is_object() ? cfg.find(key) : nullptr;
    if (t && t->is_object()) t = t->find("content");
    if (!t || !t->is_string()) return -1;
    for (size_t i = 0; i < v.pieces.size(); i++)
      if (v.pieces[i] == t->str()) return int64_t(i);
    return -1;
  };
  if (const int64_t pad = token_of("pad_token"); pad >= 0) out.add_u32("tokenizer.ggml.padding_token_id", uint32_t(pad));
  out.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  const Json* add_eos = cfg.is_object() ? cfg.find("add_eos_token") : nullptr;
  out.add_bool("tokenizer.ggml.add_eos_token", add_eos && add_eos->is_bool() && add_eos->boolean());
  if (const Json* t = cfg.is_object() ? cfg.find("chat_template") : nullptr; t && t->is_string())
    out.add_string("tokenizer.chat_template", t->str());
}

}  // namespace

std::string quantize_type_names() {
  std::string out;
  for (const FileType& f : kFileTypes) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

QuantizeResult quantize_model(const QuantizeOptions& o, const std::function<void(double)>& progress) {
  const FileType& ft = file_type(o.type);
  GgufWriter out(o.output);
  const auto model = load_model(o.input, LoadOptions{}, {});
  const Model& m = *model;
  const std::vector<Plan> plans = plan_tensors(m, ft, o.leave_output);
  check_sources(m, plans);

  std::unique_ptr<GgufFile> source;
  if (m.format == "gguf") source = std::make_unique<GgufFile>(m.files.at(0));
  add_model_keys(out, m, ft);
  add_rope_scaling(out, m, source.get());
  if (source) copy_gguf_vocab(out, *source);
  else add_hf_vocab(out, m);

  QuantizeResult result;
  result.type = ft.name;
  double total = 0, done = 0;
  for (const Plan& p : plans) {
    out.add_tensor(p.name, p.type, p.n_dims, p.cols, p.rows);
    result.types[dtype_name(p.type)]++;
    total += double(p.cols) * double(p.rows);
  }
  result.tensors = int(plans.size());
  out.write_header();

  cpu::ThreadPool pool(o.threads > 0 ? o.threads : cpu::physical_core_count());
  std::vector<std::vector<float>> scratch(size_t(pool.size()));
  std::vector<uint8_t> chunk;
  for (const Plan& p : plans) {
    if (p.vec) {
      out.write(p.vec->data(), p.vec->size() * sizeof(float));
      continue;
    }
    const size_t row_bytes = dtype_row_bytes(p.type, p.cols);
    // ~16 MB of f32 per chunk: rows quantize in parallel, chunks are written in order.
    const int64_t chunk_rows = std::max<int64_t>(1, std::min<int64_t>(p.rows, (int64_t(1) << 22) / p.cols));
    chunk.resize(row_bytes * size_t(chunk_rows));
    for (int64_t r0 = 0; r0 < p.rows; r0 += chunk_rows) {
      const int n = int(std::min(chunk_rows, p.rows - r0));
      pool.parallel_for(n, [&](int i, int thread) {
        std::vector<float>& row = scratch[size_t(thread)];
        row.resize(size_t(p.cols));
        dequantize_row(p.src->type, p.src->row(p.map(r0 + i)), row.data(), p.cols);
        quantize_row(p.type, row.data(), chunk.data() + size_t(i) * row_bytes, p.cols);
      });
      out.write(chunk.data(), size_t(n) * row_bytes);
      done += double(n) * double(p.cols);
      if (progress) progress(done / total);
    }
  }
  out.finish();
  result.bytes = out.bytes_written();
  return result;
}

}  // namespace ilm::quant
