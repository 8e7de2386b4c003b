// Entry points of model loading: picks the reader by what PATH is (GGUF file or HF directory),
// plus the checks both readers share.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "model/fingerprint.h"
#include "model/gguf.h"
#include "model/load_helpers.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/half.h"
#include "util/host_memory.h"
#include "util/mapped_file.h"

namespace ilm {

Model::~Model() = default;

namespace load {

float default_dynamic_factor(int context_length) { return context_length == 262144 ? 2.5f : 2.0f; }

void resolve_rope_scaling(ModelConfig& c, const FileRopeScaling& file, const LoadOptions& o,
                          const std::string& path) {
  const bool factor_given = o.rope_factor > 0;
  if (factor_given && (!std::isfinite(o.rope_factor) || o.rope_factor < 1.0f))
    throw Error("RoPE scaling factor " + std::to_string(o.rope_factor) + " is invalid (must be >= 1)");
  if (o.override_scaling || factor_given) {
    c.rope_scaling = o.override_scaling ? o.rope_scaling : RopeScaling::Dynamic;
    if (c.rope_scaling == RopeScaling::None) {
      c.rope_factor = 1.0f;
    } else if (factor_given) {
      c.rope_factor = o.rope_factor;
    } else {
      const bool file_dynamic = file.unsupported.empty() && file.type == RopeScaling::Dynamic;
      c.rope_factor = file_dynamic ? file.factor : default_dynamic_factor(c.context_length);
    }
    return;
  }
  if (!file.unsupported.empty())
    throw Error(path + ": " + file.unsupported +
                "; this engine supports dynamic NTK scaling only (override it in the load options)");
  c.rope_scaling = file.type;
  c.rope_factor = file.type == RopeScaling::Dynamic ? file.factor : 1.0f;
  if (c.rope_scaling == RopeScaling::Dynamic && (!std::isfinite(c.rope_factor) || c.rope_factor < 1.0f))
    throw Error(path + ": dynamic RoPE scaling factor " + std::to_string(c.rope_factor) +
                " is invalid (must be >= 1)");
}

void check_config(ModelConfig& c, const std::string& path) {
  auto positive = [&](int64_t v, const char* what, int64_t max) {
    if (v <= 0) throw Error(path + ": " + what + " is " + std::to_string(v) + ", must be positive");
    if (v > max)
      throw Error(path + ": " + what + " " + std::to_string(v) + " is larger than this engine supports (" +
                  std::to_string(max) + ")");
  };
  positive(c.dim, "hidden size (embedding length)", 1 << 16);
  positive(c.n_layers, "layer count", 1 << 10);
  positive(c.n_heads, "attention head count", 1 << 10);
  positive(c.n_kv_heads, "key/value head count", 1 << 10);
  positive(c.ffn_dim, "feed-forward size", 1 << 20);
  positive(c.vocab_size, "vocabulary size", 1 << 24);
  positive(c.context_length, "context length", 1 << 24);
  if (c.dim % c.n_heads != 0)
    throw Error(path + ": hidden size " + std::to_string(c.dim) + " is not divisible by the head count " +
                std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    throw Error(path + ": head count " + std::to_string(c.n_heads) +
                " is not divisible by the key/value head count " + std::to_string(c.n_kv_heads));
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0)
    throw Error(path + ": head dimension " + std::to_string(c.head_dim) + " is odd; RoPE needs pairs");
  if (!std::isfinite(c.rope_theta) || c.rope_theta <= 0)
    throw Error(path + ": RoPE base (rope_theta) " + std::to_string(c.rope_theta) + " is invalid");
  if (!std::isfinite(c.norm_eps) || c.norm_eps <= 0 || c.norm_eps >= 1)
    throw Error(path + ": RMS norm epsilon " + std::to_string(c.norm_eps) + " is invalid");
}

void check_vocab(const Vocab& v, int vocab_size, const std::string& path) {
  if (v.size() == 0) throw Error(path + ": the tokenizer has no tokens");
  if (v.size() > vocab_size)
    throw Error(path + ": the tokenizer has " + std::to_string(v.size()) +
                " tokens but the model's embedding has only " + std::to_string(vocab_size) + " rows");
  auto id_ok = [&](int32_t id, const char* what) {
    if (id < 0 || id >= v.size())
      throw Error(path + ": " + what + " token id " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(v.size()) + " tokens)");
  };
  id_ok(v.bos_id, "BOS");
  id_ok(v.eos_id, "EOS");
  id_ok(v.unk_id, "unknown");
}

std::vector<int32_t> stop_tokens(const Vocab& v) {
  std::vector<int32_t> out;
  auto add = [&](int32_t id) {
    if (id >= 0 && id < v.size() && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  int32_t eos_piece = -1, im_end = -1;
  for (int32_t i = 0; i < v.size(); i++) {
    if (eos_piece < 0 && v.pieces[i] == "</s>") eos_piece = i;
    if (im_end < 0 && v.pieces[i] == "<|im_end|>") im_end = i;
  }
  add(eos_piece >= 0 ? eos_piece : 2);
  add(im_end);
  add(v.eos_id);
  return out;
}

void check_shape(const Tensor& t, int64_t ne0, int64_t ne1, const std::string& path) {
  const bool vec = ne1 < 0;
  if (t.ne[0] == ne0 && t.ne[1] == (vec ? 1 : ne1)) return;
  auto fmt = [](int64_t a, int64_t b) {
    return "{" + std::to_string(a) + (b < 0 ? "" : ", " + std::to_string(b)) + "}";
  };
  throw Error(path + ": tensor " + t.name + " has shape " + fmt(t.ne[0], t.n_dims > 1 ? t.ne[1] : -1) +
              ", expected " + fmt(ne0, ne1) + " (innermost dimension first)");
}

std::vector<float> norm_to_f32(const Tensor& t, int64_t dim, const std::string& path) {
  check_shape(t, dim, -1, path);
  std::vector<float> out(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; i++) {
    switch (t.type) {
      case DType::F32: std::memcpy(&out[i], t.data + 4 * i, 4); break;
      case DType::F16:
      case DType::BF16: {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = t.type == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
        break;
      }
      default:
        throw Error(path + ": norm tensor " + t.name + " has type " + dtype_name(t.type) +
                    "; expected F32, F16 or BF16");
    }
  }
  return out;
}

void align_tensor(Model& model, Tensor& t) {
  const size_t align = t.type == DType::F32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(t.data) % align == 0) return;
  std::unique_ptr<uint8_t[]> copy(new uint8_t[t.nbytes]);  // operator new aligns for any scalar
  std::memcpy(copy.get(), t.data, t.nbytes);
  t.data = copy.get();
  model.owned.push_back(std::move(copy));
}

std::string name_list(const std::vector<std::string>& names) {
  std::string out;
  const size_t shown = std::min<size_t>(names.size(), 6);
  for (size_t i = 0; i < shown; i++) out += (i ? ", " : "") + names[i];
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

std::shared_ptr<MappedFile> open_weights(Model& model, const std::string& path, const LoadOptions& options) {
  using Weights = LoadOptions::Weights;
  bool ram = options.weights == Weights::Ram;
  if (options.weights == Weights::RamIfFits) {
    struct stat st;
    try {
      ram = ::stat(path.c_str(), &st) == 0 && host_memory_available() > uint64_t(st.st_size) + (uint64_t(1) << 30);
    } catch (const Error&) {
      ram = false;  // no /proc/meminfo: map, the safe choice
    }
  }
  auto file = MappedFile::open(path, ram ? MappedFile::Residency::Ram : MappedFile::Residency::Mapped);
  model.weights_in_ram = (model.files.empty() || model.weights_in_ram) && file->in_ram();
  model.files.push_back(file);
  model.file_bytes += file->size();
  return file;
}

Vocab sentencepiece_vocab(const std::string& path) {
  auto file = MappedFile::open(path);
  try {
    return vocab_from_sentencepiece(file->data(), file->size());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace load

namespace {

enum class Kind { Gguf, HfDir, Other };

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// What PATH is; also turns a file inside an HF checkpoint (config.json, *.safetensors) into its
// directory, since users often pick one of those files.
Kind classify(std::string& path, const char* what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw Error(std::string(what) + " not found: " + path);
    throw Error("cannot access " + path + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return Kind::HfDir;
  if (ends_with(path, ".gguf")) return Kind::Gguf;
  const size_t slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base == "config.json" || ends_with(base, ".safetensors") || ends_with(base, ".safetensors.index.json")) {
    path = slash == std::string::npos ? "." : path.substr(0, slash);
    return Kind::HfDir;
  }
  auto file = MappedFile::open(path);
  return is_gguf(file->data(), file->size()) ? Kind::Gguf : Kind::Other;
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path_in, const LoadOptions& options,
                                  const ProgressFn& progress) {
  std::string path = path_in;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const Kind kind = classify(path, "model");
  if (kind == Kind::Other)
    throw Error(path + " is not a model: expected a .gguf file or a Hugging Face checkpoint directory "
                       "(config.json + *.safetensors)");
  auto model = std::make_unique<Model>();
  model->path = path;
  const ProgressFn report = progress ? progress : [](double) {};
  if (kind == Kind::Gguf) {
    model->format = "gguf";
    load::load_gguf_model(*model, options, report);
  } else {
    model->format = "hf";
    load::load_hf_model(*model, options, report);
  }
  model->stop_tokens = load::stop_tokens(model->vocab);
  model->fingerprint = model_fingerprint(*model);
  report(1.0);
  return model;
}

Vocab load_vocab(const std::string& path_in) {
  std::string path = path_in;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  switch (classify(path, "tokenizer")) {
    case Kind::Gguf: return load::gguf_vocab(GgufFile(MappedFile::open(path)));
    case Kind::HfDir: return load::hf_vocab(path);
    case Kind::Other: break;
  }
  return load::sentencepiece_vocab(path);
}

}  // namespace ilm
