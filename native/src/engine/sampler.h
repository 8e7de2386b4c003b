#pragma once
// Picks the next token from logits: repetition penalty, then greedy or temperature sampling
// restricted by top-k, top-p and min-p. A fixed seed makes the sequence reproducible.
#include <cstdint>
#include <random>
#include <vector>

namespace ilm {

struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  uint64_t seed = 0;
  bool has_seed = false;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // history: the tokens so far (for the repetition penalty). Modifies nothing but its scratch.
  int32_t sample(const float* logits, int vocab, const std::vector<int32_t>& history);

  // Decoding from a row's best logits only (the CUDA backend reduces them on the device): how many
  // of the row's best (logit, id) pairs sample() needs to choose exactly as it would from the whole
  // row, or 0 when it needs the whole row. 1 for greedy; top_k for a top-k cutoff (then top-p and
  // min-p work within those); plus the distinct tokens of the penalty window when a repetition
  // penalty > 1 is on (penalized tokens only fall, so the penalized best k lie among these).
  // 0 (whole row): top-p or min-p without top-k, plain temperature sampling, a penalty < 1, or
  // more than max pairs.
  int candidates_needed(const std::vector<int32_t>& history, int vocab, int max) const;
  // sample() from the n best (logit, id) pairs of a row, best first with ties to the lower id,
  // n = candidates_needed(...) or the whole vocabulary: the same token sample() would pick, with
  // the same use of the random stream.
  int32_t sample_best(const float* logits, const int32_t* ids, int n, const std::vector<int32_t>& history);

 private:
  // The repetition penalty's tokens (empty when it is off).
  void penalty_window(const std::vector<int32_t>& history, std::vector<int32_t>& out) const;
  // Temperature, top-p, min-p and the draw over candidates_[0, n), which hold (logit, id) best first.
  int32_t draw(size_t n);

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<int32_t> window_;
};

// Log-softmax of logits, then the k best (id, logprob) pairs, best first.
std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int vocab, int k);

}  // namespace ilm
