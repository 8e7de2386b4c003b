#pragma once
// SentencePiece BPE with byte fallback, giving exactly the ids of InternLM2's own tokenizer.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace ilm {

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Encodes text without BOS. With allow_special, control pieces written literally in the text
  // (e.g. "<|im_start|>") become their ids; only trusted template text may set it.
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;

  // The bytes a token contributes to the output: U+2581 -> ' ', <0xAB> -> byte 0xAB;
  // control, unknown and unused tokens contribute nothing.
  std::string token_bytes(int32_t id) const;
  // Concatenated token_bytes; may end in an incomplete UTF-8 sequence.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Looks up a piece by its exact text (e.g. "<|im_end|>"); -1 when absent.
  int32_t piece_to_id(std::string_view piece) const;
  const Vocab& vocab() const;
  int32_t n_vocab() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Releases only complete UTF-8 sequences, so a character split across tokens is never
// emitted half; invalid bytes are released as U+FFFD by flush().
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

// Parses a SentencePiece ModelProto (tokenizer.model) into a Vocab; throws ilm::Error on bad input.
Vocab vocab_from_sentencepiece(const uint8_t* data, size_t size);

}  // namespace ilm
