// Session::append_top_k: a decode step whose logits stay on the backend's device but for the k best
// (the generate loop's greedy and top-k path). Kept apart from session.cpp's append(), which it
// mirrors for a single token.
#include <algorithm>

#include "engine/rope.h"
#include "engine/session.h"
#include "util/error.h"

namespace ilm {

bool Session::append_top_k(int32_t token, int k, std::vector<float>& logits, std::vector<int32_t>& ids,
                           const std::atomic<bool>& cancel) {
  if (k <= 0 || k > backend_.max_device_top_k()) return false;
  if (length() + 1 > max_context_)
    throw Error("context full: " + std::to_string(length() + 1) + " tokens exceed this session's context of " +
                std::to_string(max_context_) + " tokens");
  if (cancel.load()) throw Cancelled();
  if (tokens_.empty()) rope_base_ = float(rope_base_for_length(model_.config, 1));
  logits.resize(size_t(k));
  ids.resize(size_t(k));
  ForwardRequest req;
  req.tokens = &token;
  req.n_tokens = 1;
  req.start_pos = length();
  req.rope_base = rope_base_;
  req.logits_from = 1;  // no whole rows
  req.top_k = k;
  req.top_logits = logits.data();
  req.top_ids = ids.data();
  backend_.forward(*cache_, req);
  tokens_.push_back(token);
  return true;
}

}  // namespace ilm
