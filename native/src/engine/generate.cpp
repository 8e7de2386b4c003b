#include "engine/generate.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace ilm {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Length of the longest suffix of text that is a proper prefix of some stop string: that much
// text must be held back until the next token decides.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; n--) {
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "stop";
}

GenerateResult generate(Session& session, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateParams& params, const std::function<void(const std::string&)>& on_text,
                        const std::atomic<bool>& cancel, const PrefillProgress& on_prefill) {
  GenerateResult result;
  result.prompt_tokens = int(prompt.size());
  const int vocab = tokenizer.n_vocab();
  std::vector<float> logits;
  auto keep_logits = [&](int, const float* row) { logits.assign(row, row + vocab); };

  std::vector<std::string> stops;
  for (const auto& s : params.stop_strings)
    if (!s.empty()) stops.push_back(s);

  const auto prompt_start = std::chrono::steady_clock::now();
  try {
    result.cached_tokens = session.prefill(prompt, keep_logits, cancel, on_prefill, params.rope_length);
  } catch (const Cancelled&) {
    result.finish_reason = FinishReason::Cancelled;
    result.prompt_ms = ms_since(prompt_start);
    return result;
  }
  result.prompt_ms = ms_since(prompt_start);

  const auto gen_start = std::chrono::steady_clock::now();
  Sampler sampler(params.sampling);
  StreamDecoder decoder(tokenizer);
  std::string text;     // everything decoded so far
  size_t emitted = 0;   // bytes of text already passed to on_text
  std::vector<int32_t> history = session.tokens();
  std::vector<float> best_logits;  // the last step's best candidates, when only they came back
  std::vector<int32_t> best_ids;
  auto emit_upto = [&](size_t end) {
    if (end > emitted) {
      if (on_text) on_text(text.substr(emitted, end - emitted));
      emitted = end;
    }
  };

  result.finish_reason = FinishReason::Length;
  while (int(result.tokens.size()) < params.max_tokens) {
    if (cancel.load()) {
      result.finish_reason = FinishReason::Cancelled;
      break;
    }
    const int32_t next = best_ids.empty() ? sampler.sample(logits.data(), vocab, history)
                                          : sampler.sample_best(best_logits.data(), best_ids.data(), int(best_ids.size()), history);
    if (std::find(params.stop_tokens.begin(), params.stop_tokens.end(), next) != params.stop_tokens.end()) {
      result.finish_reason = FinishReason::Stop;
      break;
    }
    result.tokens.push_back(next);
    history.push_back(next);
    text += decoder.push(next);

    size_t stop_at = std::string::npos;
    for (const auto& s : stops) {
      const size_t from = emitted >= s.size() ? emitted - s.size() + 1 : 0;
      const size_t pos = text.find(s, from);
      if (pos != std::string::npos) stop_at = std::min(stop_at, pos);
    }
    if (stop_at != std::string::npos) {
      text.resize(stop_at);
      emit_upto(text.size());
      result.finish_reason = FinishReason::Stop;
      break;
    }
    emit_upto(text.size() - held_back(text, stops));
    if (int(result.tokens.size()) >= params.max_tokens) break;
    if (session.length() >= session.max_context()) break;
    try {
      // Greedy and top-k decoding need only the row's best logits: on a GPU those alone come back
      // (Sampler::candidates_needed says when that gives sample()'s exact choice).
      const int k = sampler.candidates_needed(history, vocab, vocab);
      if (k == 0 || !session.append_top_k(next, k, best_logits, best_ids, cancel)) {
        best_ids.clear();
        session.append({next}, 0, keep_logits, cancel);
      }
    } catch (const Cancelled&) {
      result.finish_reason = FinishReason::Cancelled;
      break;
    }
  }
  if (result.finish_reason != FinishReason::Stop) {
    text += decoder.flush();
  }
  emit_upto(text.size());
  result.text = text;
  result.generate_ms = ms_since(gen_start);
  return result;
}

}  // namespace ilm
