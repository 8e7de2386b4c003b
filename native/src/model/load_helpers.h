#pragma once
// Checks and conversions shared by the GGUF and Hugging Face loaders (implemented in loader.cpp).
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace ilm {

class GgufFile;

namespace load {

// The RoPE scaling a file asks for: its (type, factor), or an error text when the file asks for a
// scaling this engine cannot apply (linear with a factor, yarn, ...).
struct FileRopeScaling {
  RopeScaling type = RopeScaling::None;
  float factor = 1.0f;
  std::string unsupported;
};

// InternLM2.5's dynamic NTK factor when the file does not say: 2.5 for the 262144-token models,
// 2.0 otherwise (REFERENCE.md).
float default_dynamic_factor(int context_length);

// Applies LoadOptions over the file's scaling and stores the result in CONFIG. A rope_factor > 0
// without override_scaling switches to dynamic with that factor.
void resolve_rope_scaling(ModelConfig& config, const FileRopeScaling& file, const LoadOptions& options,
                          const std::string& path);

// Rejects zero, inconsistent or absurd hyperparameters; fills head_dim.
void check_config(ModelConfig& config, const std::string& path);

// The tokenizer must fit the embedding, and its special ids must exist.
void check_vocab(const Vocab& vocab, int vocab_size, const std::string& path);

// </s>, <|im_end|> when the vocab has it, and the vocab's eos.
std::vector<int32_t> stop_tokens(const Vocab& vocab);

// Throws naming the tensor when its shape is not {ne0} (ne1 < 0) or {ne0, ne1}.
void check_shape(const Tensor& t, int64_t ne0, int64_t ne1, const std::string& path);

// A norm weight ({dim}, F32/F16/BF16) converted to f32.
std::vector<float> norm_to_f32(const Tensor& t, int64_t dim, const std::string& path);

// Kernels read elements through typed pointers: a tensor whose bytes are not aligned to its element
// (possible with odd safetensors headers or GGUF alignment 1) is copied into MODEL.owned.
void align_tensor(Model& model, Tensor& t);

// "a, b, c and 4 more": keeps error messages short when many tensors are missing.
std::string name_list(const std::vector<std::string>& names);

// Opens a weight file where options.weights says (mapped or in RAM) and records it in MODEL
// (files, file_bytes, weights_in_ram).
std::shared_ptr<MappedFile> open_weights(Model& model, const std::string& path, const LoadOptions& options);

// The weights of a .gguf file (llama.cpp's internlm2 layout, pairwise RoPE).
void load_gguf_model(Model& model, const LoadOptions& options, const ProgressFn& progress);
// The tokenizer stored in a GGUF file's tokenizer.ggml.* metadata.
Vocab gguf_vocab(const GgufFile& gguf);

// A Hugging Face checkpoint directory (config.json, safetensors, tokenizer.model).
void load_hf_model(Model& model, const LoadOptions& options, const ProgressFn& progress);
// tokenizer.model of an HF directory with tokenizer_config.json's added tokens.
Vocab hf_vocab(const std::string& dir);
// A bare SentencePiece tokenizer.model file.
Vocab sentencepiece_vocab(const std::string& path);

}  // namespace load
}  // namespace ilm
