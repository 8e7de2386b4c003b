#pragma once
// A conversation's state on one backend: the KV cache, the tokens it holds and the RoPE base it
// was built with. A cache is never reused under a different base.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/kv_file.h"

namespace ilm {

// Receives logits rows while a batch is evaluated: (index in the batch, vocab floats).
using LogitsSink = std::function<void(int index, const float* logits)>;
// Receives prefill progress after every computed chunk: positions computed so far in this call
// and how many it computes in all (reused positions count in neither).
using PrefillProgress = std::function<void(int done, int total)>;

class Session {
 public:
  // max_context: most positions this session may hold (0 = the model's context length);
  // kv_type: the cache's element type.
  Session(const Model& model, Backend& backend, int max_context, KVType kv_type);

  int length() const { return int(tokens_.size()); }
  int max_context() const { return max_context_; }
  // Positions the KV cache has room for now: it grows on demand, not past max_context() (the CUDA
  // cache rounds up to 64 positions).
  int cache_capacity() const { return cache_->capacity(); }
  KVType kv_type() const { return kv_type_; }
  float rope_base() const { return rope_base_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

  // Appends tokens, computing them chunk by chunk; sink gets the logits of every appended
  // position from `logits_from` on (relative to this batch). With an empty cache the RoPE base
  // is chosen for the final length, so a one-pass evaluation of L tokens uses base'(L) at every
  // position. Throws Cancelled (between chunks) when cancel becomes true; what was computed stays.
  // progress, when given, hears after every chunk. rope_length > the batch's length chooses the
  // base for that planned length instead (a prefix that later questions extend keeps its base;
  // docs/rope-policy.md).
  void append(const std::vector<int32_t>& tokens, int logits_from, const LogitsSink& sink,
              const std::atomic<bool>& cancel, const PrefillProgress& progress = nullptr, int rope_length = 0);

  // One decode step that brings back only the k best (logit, id) pairs of the new position's
  // logits, best first with ties to the lower id (reduced on the backend's device): appends
  // `token` as append({token}, ...) would. Returns false, appending nothing, when the backend
  // cannot reduce k candidates (Backend::max_device_top_k); append() then. (session_top_k.cpp)
  bool append_top_k(int32_t token, int k, std::vector<float>& logits, std::vector<int32_t>& ids,
                    const std::atomic<bool>& cancel);

  // Keeps the longest cached prefix of `prompt` that is valid under the base `prompt` needs,
  // then appends the rest; sink gets the last position's logits. Returns how many positions were reused.
  // The base needed is base'(max(prompt length, rope_length)).
  int prefill(const std::vector<int32_t>& prompt, const LogitsSink& sink, const std::atomic<bool>& cancel,
              const PrefillProgress& progress = nullptr, int rope_length = 0);

  // Keeps only the first n positions.
  void truncate(int n);

  // Writes the first n positions (KV rows, tokens, RoPE base) to path (engine/kv_file.h),
  // atomically. Returns the file's size in bytes.
  uint64_t save(const std::string& path, int n) const;

  // Replaces this session's contents with a saved cache: its tokens and its RoPE base, so
  // prefill() reuses it exactly as if it had been computed here. The file is validated
  // completely first: on any mismatch this session is unchanged; should copying fail midway,
  // it is left empty, never half-written.
  void restore(const std::string& path);

 private:
  // What a saved cache must match to be restored here.
  KVFileShape file_shape() const;

  const Model& model_;
  Backend& backend_;
  int max_context_;
  KVType kv_type_;
  std::unique_ptr<KVCache> cache_;
  std::vector<int32_t> tokens_;
  float rope_base_ = 0.0f;
  std::vector<float> logits_;
};

}  // namespace ilm
