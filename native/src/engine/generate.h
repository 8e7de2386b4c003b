#pragma once
// The generation loop: prefill (with prefix reuse), then sample one token at a time until a
// stop token, a stop string, the token budget or cancellation.
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"

namespace ilm {

enum class FinishReason { Stop, Length, Cancelled };
const char* finish_reason_name(FinishReason reason);

struct GenerateParams {
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<int32_t> stop_tokens;
  std::vector<std::string> stop_strings;
  // Plans the RoPE base for this many positions when longer than the prompt (Session::prefill).
  int rope_length = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens, the stop token excluded
  std::string text;             // their text, cut before any stop string
  FinishReason finish_reason = FinishReason::Length;
  int prompt_tokens = 0;
  int cached_tokens = 0;
  double prompt_ms = 0.0;
  double generate_ms = 0.0;
};

// on_text receives text as soon as it is certain: complete UTF-8 that cannot be the start of
// a stop string. on_prefill hears how much of the prompt's uncached part has been computed.
// Cancellation returns what was produced so far with FinishReason::Cancelled.
GenerateResult generate(Session& session, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateParams& params, const std::function<void(const std::string&)>& on_text,
                        const std::atomic<bool>& cancel, const PrefillProgress& on_prefill = nullptr);

}  // namespace ilm
