#include "engine/session.h"

#include <algorithm>

#include "engine/rope.h"
#include "util/error.h"

namespace ilm {

Session::Session(const Model& model, Backend& backend, int max_context, KVType kv_type)
    : model_(model), backend_(backend),
      max_context_(max_context > 0 ? max_context : std::max(model.config.context_length, 1)),
      kv_type_(kv_type),
      cache_(backend.create_cache(std::min(max_context_, 512), kv_type)) {}

void Session::append(const std::vector<int32_t>& tokens, int logits_from, const LogitsSink& sink,
                     const std::atomic<bool>& cancel) {
  const int n = int(tokens.size());
  if (n == 0) return;
  if (length() + n > max_context_)
    throw Error("context full: " + std::to_string(length() + n) + " tokens exceed this session's context of " +
                std::to_string(max_context_) + " tokens");
  if (tokens_.empty()) rope_base_ = float(rope_base_for_length(model_.config, n));

  const int vocab = model_.config.vocab_size;
  const int chunk = backend_.max_batch();
  for (int done = 0; done < n; done += chunk) {
    if (cancel.load()) throw Cancelled();
    const int nt = std::min(chunk, n - done);
    ForwardRequest req;
    req.tokens = tokens.data() + done;
    req.n_tokens = nt;
    req.start_pos = length();
    req.rope_base = rope_base_;
    req.logits_from = std::clamp(logits_from - done, 0, nt);
    const int n_logits = nt - req.logits_from;
    if (sink && n_logits > 0) {
      logits_.resize(size_t(n_logits) * vocab);
      req.logits_out = logits_.data();
    } else {
      req.logits_from = nt;
    }
    backend_.forward(*cache_, req);
    tokens_.insert(tokens_.end(), req.tokens, req.tokens + nt);
    if (req.logits_out)
      for (int i = 0; i < n_logits; i++) sink(done + req.logits_from + i, logits_.data() + size_t(i) * vocab);
  }
}

int Session::prefill(const std::vector<int32_t>& prompt, const LogitsSink& sink, const std::atomic<bool>& cancel) {
  if (prompt.empty()) throw Error("the prompt is empty");
  const float needed = float(rope_base_for_length(model_.config, int(prompt.size())));
  size_t keep = 0;
  if (!tokens_.empty() && needed == rope_base_) {
    while (keep < tokens_.size() && keep < prompt.size() && tokens_[keep] == prompt[keep]) keep++;
  }
  // The last prompt token is always recomputed: its logits start the generation.
  if (keep == prompt.size()) keep--;
  truncate(int(keep));
  const std::vector<int32_t> rest(prompt.begin() + keep, prompt.end());
  append(rest, int(rest.size()) - 1, sink, cancel);
  return int(keep);
}

void Session::truncate(int n) {
  if (n < 0) n = 0;
  if (n < length()) tokens_.resize(size_t(n));
}

}  // namespace ilm
