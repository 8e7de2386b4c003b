#pragma once
// The tokenizer's data, filled either from a GGUF file's tokenizer.ggml.* metadata or from a
// SentencePiece tokenizer.model (+ Hugging Face added tokens).
#include <cstdint>
#include <string>
#include <vector>

namespace ilm {

// Values match both SentencePiece's ModelProto.SentencePiece.Type and GGUF's token_type.
enum class PieceType : uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct Vocab {
  std::vector<std::string> pieces;  // raw piece text; spaces appear as U+2581
  std::vector<float> scores;        // BPE merge priority (higher merges first)
  std::vector<PieceType> types;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  bool add_bos = true;
  // SentencePiece normalizer flags (InternLM2: identity normalizer, no dummy prefix).
  bool add_dummy_prefix = false;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;
  bool byte_fallback = true;

  int32_t size() const { return int32_t(pieces.size()); }
};

}  // namespace ilm
