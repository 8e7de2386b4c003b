#pragma once
// One in-memory description of an InternLM2 model, whatever file it came from:
// hyperparameters (ModelConfig), weight views (ModelWeights) and the tokenizer vocabulary.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/tensor.h"
#include "tokenizer/vocab.h"

namespace ilm {

class MappedFile;

enum class RopeScaling { None, Dynamic };

// Which elements RoPE rotates together. HF checkpoints rotate halves (i, i + d/2);
// llama.cpp's internlm2 GGUF files permute Q/K rows so that pairs are (2i, 2i + 1).
enum class RopeLayout { Pairwise, RotateHalf };

struct ModelConfig {
  int vocab_size = 0;
  int dim = 0;             // hidden size
  int n_layers = 0;
  int n_heads = 0;         // query heads
  int n_kv_heads = 0;      // key/value heads (GQA)
  int head_dim = 0;        // dim / n_heads
  int ffn_dim = 0;         // intermediate size
  int context_length = 0;  // max_position_embeddings (M in REFERENCE.md's dynamic NTK formula)
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_factor = 1.0f;
  RopeLayout rope_layout = RopeLayout::Pairwise;
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim], converted to f32 at load (tiny)
  std::vector<float> ffn_norm;   // [dim]
  // Either separate wq [dim -> n_heads*hd], wk, wv [dim -> n_kv_heads*hd] or one packed
  // HF wqkv whose output rows are grouped per KV head: G query heads, then K, then V.
  Tensor wq, wk, wv;
  Tensor wqkv;  // non-empty only for the packed form
  Tensor wo;    // [n_heads*hd -> dim]
  Tensor w1;    // gate [dim -> ffn]
  Tensor w3;    // up   [dim -> ffn]
  Tensor w2;    // down [ffn -> dim]
};

struct ModelWeights {
  Tensor tok_embd;                // [vocab rows of dim]
  std::vector<float> output_norm; // [dim]
  Tensor output;                  // [dim -> vocab]
  std::vector<LayerWeights> layers;
};

struct Model {
  std::string path;
  std::string format;  // "gguf" or "hf"
  std::string name;    // general.name or the directory name
  ModelConfig config;
  ModelWeights weights;
  Vocab vocab;
  std::vector<int32_t> stop_tokens;  // </s> and, when present, <|im_end|>
  uint64_t file_bytes = 0;           // total size of the weight files
  bool weights_in_ram = false;       // every weight file was read into (huge-page) RAM, none mapped
  uint64_t fingerprint = 0;          // model/fingerprint.h; set by load_model
  std::vector<std::shared_ptr<MappedFile>> files;  // keeps the mappings alive
  std::vector<std::unique_ptr<uint8_t[]>> owned;   // any bytes not in a mapping

  ~Model();
};

struct LoadOptions {
  // Where the weight files live (util/mapped_file.h): mapped, read into RAM, or read into RAM
  // when MemAvailable leaves at least 1 GiB beside them (what the CPU backend wants).
  enum class Weights { Mapped, Ram, RamIfFits } weights = Weights::Mapped;
  // Overrides of the file's RoPE scaling; unset fields keep what the file says (or its default).
  bool override_scaling = false;
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_factor = 0.0f;  // > 0 overrides the factor
};

// fraction in [0, 1]; called from the loading thread.
using ProgressFn = std::function<void(double fraction)>;

// PATH is a .gguf file or a Hugging Face checkpoint directory. Throws ilm::Error with a clear
// message for every bad input (missing, truncated, corrupt, unsupported type/arch, ...).
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options,
                                  const ProgressFn& progress);

}  // namespace ilm

namespace ilm {
// Reads only the tokenizer of a model: a .gguf file, an HF directory (tokenizer.model +
// tokenizer_config.json's added tokens) or a bare tokenizer.model.
Vocab load_vocab(const std::string& path);
}  // namespace ilm
