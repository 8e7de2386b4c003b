#include "engine/session.h"

#include <algorithm>

#include "engine/rope.h"
#include "util/error.h"

namespace ilm {

Session::Session(const Model& model, Backend& backend, int max_context, KVType kv_type)
    : model_(model), backend_(backend),
      max_context_(max_context > 0 ? max_context : std::max(model.config.context_length, 1)),
      kv_type_(kv_type),
      cache_(backend.create_cache(std::min(max_context_, 512), kv_type)) {
  cache_->limit_growth(max_context_);
}

void Session::append(const std::vector<int32_t>& tokens, int logits_from, const LogitsSink& sink,
                     const std::atomic<bool>& cancel, const PrefillProgress& progress, int rope_length) {
  const int n = int(tokens.size());
  if (n == 0) return;
  if (length() + n > max_context_)
    throw Error("context full: " + std::to_string(length() + n) + " tokens exceed this session's context of " +
                std::to_string(max_context_) + " tokens");
  if (tokens_.empty()) rope_base_ = float(rope_base_for_length(model_.config, std::max(n, rope_length)));

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
    if (progress) progress(done + nt, n);
  }
}

int Session::prefill(const std::vector<int32_t>& prompt, const LogitsSink& sink, const std::atomic<bool>& cancel,
                     const PrefillProgress& progress, int rope_length) {
  if (prompt.empty()) throw Error("the prompt is empty");
  const float needed = float(rope_base_for_length(model_.config, std::max(int(prompt.size()), rope_length)));
  size_t keep = 0;
  if (!tokens_.empty() && needed == rope_base_) {
    while (keep < tokens_.size() && keep < prompt.size() && tokens_[keep] == prompt[keep]) keep++;
  }
  // The last prompt token is always recomputed: its logits start the generation.
  if (keep == prompt.size()) keep--;
  truncate(int(keep));
  const std::vector<int32_t> rest(prompt.begin() + keep, prompt.end());
  append(rest, int(rest.size()) - 1, sink, cancel, progress, keep == 0 ? std::max(int(prompt.size()), rope_length) : 0);
  return int(keep);
}

void Session::truncate(int n) {
  if (n < 0) n = 0;
  if (n < length()) tokens_.resize(size_t(n));
}

KVFileShape Session::file_shape() const {
  KVFileShape shape;
  shape.fingerprint = model_.fingerprint;
  shape.type = kv_type_;
  shape.n_layers = model_.config.n_layers;
  shape.n_kv_heads = model_.config.n_kv_heads;
  shape.head_dim = model_.config.head_dim;
  shape.position_bytes = cache_->position_bytes();
  shape.vocab_size = model_.config.vocab_size;
  shape.max_tokens = max_context_;
  return shape;
}

uint64_t Session::save(const std::string& path, int n) const {
  if (n <= 0 || n > length())
    throw Error("cannot save " + std::to_string(n) + " positions: the session holds " + std::to_string(length()));
  const std::vector<int32_t> prefix(tokens_.begin(), tokens_.begin() + n);
  return save_kv_file(path, *cache_, file_shape(), prefix, rope_base_);
}

void Session::restore(const std::string& path) {
  const KVFile file = KVFile::open(path, file_shape());
  const int n = int(file.tokens().size());
  cache_->reserve(n);  // may throw (out of memory) while the session is still unchanged
  tokens_.clear();     // from here until the copy completes, the cache holds nothing valid
  file.copy_into(*cache_);
  tokens_ = file.tokens();
  rope_base_ = file.rope_base();
}

}  // namespace ilm
