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

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Log-softmax of logits, then the k best (id, logprob) pairs, best first.
std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int vocab, int k);

}  // namespace ilm
