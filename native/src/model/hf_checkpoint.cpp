// InternLM2 from a Hugging Face checkpoint directory: config.json, model.safetensors (or
// model.safetensors.index.json + shards), tokenizer.model + tokenizer_config.json. Weights stay in
// their files' mappings; the packed wqkv is kept whole (the forward pass knows its group order).
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "model/load_helpers.h"
#include "model/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json.h"
#include "util/mapped_file.h"

namespace ilm {
namespace load {

namespace {

constexpr size_t kMaxJsonBytes = 16u << 20;

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Json read_json(const std::string& path) {
  auto file = MappedFile::open(path);
  if (file->size() > kMaxJsonBytes)
    throw Error(path + " is " + std::to_string(file->size()) + " bytes, larger than the " +
                std::to_string(kMaxJsonBytes) + "-byte limit for JSON side files");
  return Json::parse(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

// A config integer: absent -> FALLBACK (or an error when < 0), otherwise a non-negative integer.
int config_int(const Json& cfg, const char* name, int64_t fallback, const std::string& path) {
  const Json* v = cfg.find(name);
  if (!v || v->is_null()) {
    if (fallback < 0) throw Error(path + ": \"" + name + "\" is missing");
    return int(fallback);
  }
  uint64_t n;
  if (!v->to_u64(&n) || n > uint64_t(INT32_MAX))
    throw Error(path + ": \"" + name + "\" must be a non-negative integer");
  return int(n);
}

double config_number(const Json& cfg, const char* name, double fallback, const std::string& path) {
  const Json* v = cfg.find(name);
  if (!v || v->is_null()) return fallback;
  if (!v->is_number()) throw Error(path + ": \"" + name + "\" must be a number");
  return v->number();
}

void check_architecture(const Json& cfg, const std::string& path) {
  std::string found;
  if (const Json* archs = cfg.find("architectures"); archs && archs->is_array()) {
    for (const Json& a : archs->items()) {
      if (!a.is_string()) continue;
      if (a.str() == "InternLM2ForCausalLM") return;
      if (found.empty()) found = a.str();
    }
  }
  if (const Json* type = cfg.find("model_type"); type && type->is_string()) {
    if (type->str() == "internlm2") return;
    if (found.empty()) found = type->str();
  }
  throw Error(path + ": unsupported architecture '" + (found.empty() ? "unknown" : found) +
              "' (this engine runs InternLM2 / InternLM2.5 models: InternLM2ForCausalLM, model_type internlm2)");
}

FileRopeScaling config_rope_scaling(const Json& cfg, const std::string& path) {
  FileRopeScaling s;
  const Json* rs = cfg.find("rope_scaling");
  if (!rs || rs->is_null()) return s;  // HF applies no scaling without the key
  if (!rs->is_object()) throw Error(path + ": \"rope_scaling\" must be an object or null");
  const Json* type = rs->find("type");
  if (!type) type = rs->find("rope_type");
  const Json* factor = rs->find("factor");
  if (!type || !type->is_string()) throw Error(path + ": \"rope_scaling\" has no \"type\"");
  if (factor && !factor->is_number()) throw Error(path + ": \"rope_scaling.factor\" must be a number");
  const std::string& t = type->str();
  if (t == "dynamic") {
    if (!factor) throw Error(path + ": \"rope_scaling\" of type dynamic has no \"factor\"");
    s.type = RopeScaling::Dynamic;
    s.factor = float(factor->number());
  } else if (!(t == "default" || (t == "linear" && (!factor || factor->number() == 1.0)))) {
    s.unsupported = "RoPE scaling type '" + t + "'" +
                    (factor ? " with factor " + std::to_string(factor->number()) : std::string());
  }
  return s;
}

// The checkpoint's safetensors files and which file holds each tensor.
class Checkpoint {
 public:
  Checkpoint(const std::string& dir, Model& model, const LoadOptions& options, const ProgressFn& progress)
      : dir_(dir), options_(options) {
    const std::string index_path = dir + "/model.safetensors.index.json";
    if (is_file(index_path)) {
      open_sharded(index_path, model, progress);
    } else if (is_file(dir + "/model.safetensors")) {
      open_shard("model.safetensors", model);
    } else if (is_file(dir + "/pytorch_model.bin") || is_file(dir + "/pytorch_model.bin.index.json")) {
      throw Error(dir + ": PyTorch .bin checkpoints are not supported; use a checkpoint with "
                        "model.safetensors (or convert it to GGUF)");
    } else {
      throw Error(dir + ": no weights found (expected model.safetensors or model.safetensors.index.json)");
    }
  }

  const SafetensorsTensor* find(const std::string& name) const {
    if (!by_name_.empty()) {
      auto it = by_name_.find(name);
      if (it == by_name_.end()) return nullptr;
      const SafetensorsTensor* t = shards_.at(it->second)->find(name);
      if (!t)
        throw Error(dir_ + ": tensor " + name + " is listed in model.safetensors.index.json for " +
                    it->second + ", but that file does not contain it");
      return t;
    }
    return shards_.begin()->second->find(name);
  }

  const std::string& file_of(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? shards_.begin()->first : it->second;
  }

 private:
  void open_shard(const std::string& name, Model& model) {
    const std::string path = dir_ + "/" + name;
    if (!is_file(path))
      throw Error(dir_ + ": shard " + name + " listed in model.safetensors.index.json is missing");
    auto st = std::make_unique<SafetensorsFile>(open_weights(model, path, options_));
    shards_.emplace(name, std::move(st));
  }

  void open_sharded(const std::string& index_path, Model& model, const ProgressFn& progress) {
    const Json index = read_json(index_path);
    const Json* map = index.find("weight_map");
    if (!map || !map->is_object())
      throw Error(index_path + ": \"weight_map\" is missing or not an object");
    std::vector<std::string> files;
    for (const auto& [tensor, file] : map->members()) {
      if (!file.is_string()) throw Error(index_path + ": weight_map entry for " + tensor + " is not a file name");
      const std::string& f = file.str();
      // Shards live in the checkpoint directory itself: refuse paths that lead elsewhere.
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
        throw Error(index_path + ": weight_map names an invalid shard file '" + f + "'");
      by_name_.emplace(tensor, f);
      if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    }
    if (files.empty()) throw Error(index_path + ": weight_map is empty");
    std::sort(files.begin(), files.end());
    for (const std::string& f : files)
      if (!is_file(dir_ + "/" + f))
        throw Error(dir_ + ": shard " + f + " listed in model.safetensors.index.json is missing");
    for (size_t i = 0; i < files.size(); i++) {
      open_shard(files[i], model);
      progress(0.5 * double(i + 1) / double(files.size()));
    }
  }

  std::string dir_;
  LoadOptions options_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, std::string> by_name_;  // tensor -> shard file (sharded checkpoints)
};

// Our Tensor view of a safetensors entry: HF's row-major [out, in] is ne = {in, out}.
Tensor to_tensor(const SafetensorsTensor& s, const std::string& file) {
  Tensor t;
  t.name = s.name;
  if (s.dtype == "F32") t.type = DType::F32;
  else if (s.dtype == "F16") t.type = DType::F16;
  else if (s.dtype == "BF16") t.type = DType::BF16;
  else
    throw Error(file + ": tensor " + s.name + " has dtype " + s.dtype +
                ", which this build does not support (supported: BF16, F16, F32)");
  if (s.shape.empty() || s.shape.size() > 2)
    throw Error(file + ": tensor " + s.name + " has " + std::to_string(s.shape.size()) +
                " dimensions, expected 1 or 2");
  t.n_dims = int(s.shape.size());
  t.ne[0] = int64_t(s.shape.back());
  t.ne[1] = s.shape.size() == 2 ? int64_t(s.shape[0]) : 1;
  t.data = s.data;
  t.nbytes = s.nbytes;
  return t;
}

}  // namespace

Vocab hf_vocab(const std::string& dir) {
  const std::string sp_path = dir + "/tokenizer.model";
  if (!is_file(sp_path)) {
    if (is_file(dir + "/tokenizer.json"))
      throw Error(dir + ": has only tokenizer.json; InternLM2 needs its SentencePiece tokenizer.model");
    throw Error(dir + ": tokenizer.model is missing (InternLM2's SentencePiece tokenizer)");
  }
  Vocab v = sentencepiece_vocab(sp_path);
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (!is_file(cfg_path)) return v;
  const Json cfg = read_json(cfg_path);
  if (!cfg.is_object()) throw Error(cfg_path + ": expected a JSON object");
  if (const Json* b = cfg.find("add_bos_token"); b && b->is_bool()) v.add_bos = b->boolean();

  if (const Json* added = cfg.find("added_tokens_decoder"); added && !added->is_null()) {
    if (!added->is_object()) throw Error(cfg_path + ": \"added_tokens_decoder\" must be an object");
    // Added ids beyond the SentencePiece model extend it contiguously, as in transformers.
    const uint64_t limit = uint64_t(v.size()) + added->members().size();
    for (const auto& [key, tok] : added->members()) {
      uint64_t id = 0;
      bool ok = !key.empty() && key.size() <= 9;
      for (char ch : key) ok = ok && ch >= '0' && ch <= '9';
      if (ok) id = std::stoull(key);
      if (!ok || id >= limit)
        throw Error(cfg_path + ": added_tokens_decoder has an invalid token id '" + key + "'");
      const Json* content = tok.find("content");
      if (!content || !content->is_string())
        throw Error(cfg_path + ": added token " + key + " has no \"content\" string");
      while (uint64_t(v.size()) <= id) {
        v.pieces.push_back("[PAD" + std::to_string(v.size()) + "]");
        v.scores.push_back(0.0f);
        v.types.push_back(PieceType::Unused);
      }
      const Json* special = tok.find("special");
      v.pieces[id] = content->str();
      v.scores[id] = 0.0f;
      v.types[id] = special && special->is_bool() && special->boolean() ? PieceType::Control : PieceType::UserDefined;
    }
  }
  // bos_token / eos_token name pieces, either as strings or {"content": ...}.
  auto special_id = [&](const char* name, int32_t& out) {
    const Json* t = cfg.find(name);
    if (t && t->is_object()) t = t->find("content");
    if (!t || !t->is_string()) return;
    for (int32_t i = 0; i < v.size(); i++)
      if (v.pieces[i] == t->str()) {
        out = i;
        return;
      }
  };
  special_id("bos_token", v.bos_id);
  special_id("eos_token", v.eos_id);
  special_id("unk_token", v.unk_id);
  return v;
}

void load_hf_model(Model& model, const LoadOptions& options, const ProgressFn& progress) {
  const std::string& dir = model.path;
  const std::string cfg_path = dir + "/config.json";
  if (!is_file(cfg_path))
    throw Error(dir + ": config.json is missing (not a Hugging Face checkpoint directory?)");
  const Json cfg = read_json(cfg_path);
  if (!cfg.is_object()) throw Error(cfg_path + ": expected a JSON object");
  check_architecture(cfg, cfg_path);
  if (const Json* bias = cfg.find("bias"); bias && bias->is_bool() && bias->boolean())
    throw Error(cfg_path + ": \"bias\": true is not supported (InternLM2 models have no biases)");

  ModelConfig& c = model.config;
  c.rope_layout = RopeLayout::RotateHalf;
  c.dim = config_int(cfg, "hidden_size", -1, cfg_path);
  c.n_layers = config_int(cfg, "num_hidden_layers", -1, cfg_path);
  c.n_heads = config_int(cfg, "num_attention_heads", -1, cfg_path);
  c.n_kv_heads = config_int(cfg, "num_key_value_heads", c.n_heads, cfg_path);
  c.ffn_dim = config_int(cfg, "intermediate_size", -1, cfg_path);
  c.vocab_size = config_int(cfg, "vocab_size", -1, cfg_path);
  c.context_length = config_int(cfg, "max_position_embeddings", 2048, cfg_path);
  c.rope_theta = float(config_number(cfg, "rope_theta", 10000.0, cfg_path));
  c.norm_eps = float(config_number(cfg, "rms_norm_eps", 1e-6, cfg_path));
  check_config(c, cfg_path);
  resolve_rope_scaling(c, config_rope_scaling(cfg, cfg_path), options, cfg_path);
  const size_t slash = dir.find_last_of('/');
  model.name = dir.substr(slash == std::string::npos ? 0 : slash + 1);

  model.vocab = hf_vocab(dir);
  check_vocab(model.vocab, c.vocab_size, dir + "/tokenizer.model");

  Checkpoint ckpt(dir, model, options, progress);
  std::vector<std::string> names = {"model.tok_embeddings.weight", "model.norm.weight", "output.weight"};
  for (int l = 0; l < c.n_layers; l++) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"attention_norm.weight", "attention.wqkv.weight", "attention.wo.weight",
                          "ffn_norm.weight", "feed_forward.w1.weight", "feed_forward.w3.weight",
                          "feed_forward.w2.weight"})
      names.push_back(b + n);
  }
  std::vector<std::string> missing;
  for (const std::string& n : names)
    if (!ckpt.find(n)) missing.push_back(n);
  if (!missing.empty()) throw Error(dir + ": missing tensors: " + name_list(missing));

  const int64_t dim = c.dim, hd = c.head_dim;
  const int64_t q_rows = int64_t(c.n_heads) * hd, kv_rows = int64_t(c.n_kv_heads) * hd;
  size_t done = 0;
  auto get = [&](const std::string& name) {
    progress(0.5 + 0.5 * double(++done) / double(names.size()));
    return to_tensor(*ckpt.find(name), dir + "/" + ckpt.file_of(name));
  };
  auto matrix = [&](const std::string& name, int64_t in, int64_t out) {
    Tensor t = get(name);
    check_shape(t, in, out, dir + "/" + ckpt.file_of(name));
    align_tensor(model, t);
    return t;
  };
  auto norm = [&](const std::string& name) { return norm_to_f32(get(name), dim, dir + "/" + ckpt.file_of(name)); };

  ModelWeights& w = model.weights;
  w.tok_embd = matrix("model.tok_embeddings.weight", dim, c.vocab_size);
  w.output_norm = norm("model.norm.weight");
  w.output = matrix("output.weight", dim, c.vocab_size);
  w.layers.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; l++) {
    LayerWeights& L = w.layers[size_t(l)];
    const std::string b = "model.layers." + std::to_string(l) + ".";
    L.attn_norm = norm(b + "attention_norm.weight");
    L.wqkv = matrix(b + "attention.wqkv.weight", dim, q_rows + 2 * kv_rows);
    L.wo = matrix(b + "attention.wo.weight", q_rows, dim);
    L.ffn_norm = norm(b + "ffn_norm.weight");
    L.w1 = matrix(b + "feed_forward.w1.weight", dim, c.ffn_dim);
    L.w3 = matrix(b + "feed_forward.w3.weight", dim, c.ffn_dim);
    L.w2 = matrix(b + "feed_forward.w2.weight", c.ffn_dim, dim);
  }
}

}  // namespace load
}  // namespace ilm
