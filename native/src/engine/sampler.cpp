#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace ilm {

Sampler::Sampler(const SamplingParams& params)
    : p_(params), rng_(params.has_seed ? params.seed : std::random_device{}()) {}

int32_t Sampler::sample(const float* logits, int vocab, const std::vector<int32_t>& history) {
  work_.assign(logits, logits + vocab);
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0) {
    const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(p_.repeat_last_n));
    std::unordered_set<int32_t> seen(history.end() - n, history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      work_[id] = work_[id] > 0 ? work_[id] / p_.repeat_penalty : work_[id] * p_.repeat_penalty;
    }
  }
  if (p_.temperature <= 0.0f) return int32_t(std::max_element(work_.begin(), work_.end()) - work_.begin());

  candidates_.clear();
  candidates_.reserve(vocab);
  for (int i = 0; i < vocab; i++) candidates_.emplace_back(work_[i], int32_t(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t n = candidates_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + p_.top_k, candidates_.end(), by_logit);
    n = size_t(p_.top_k);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  return draw(n);
}

int32_t Sampler::draw(size_t n) {
  // Softmax at the temperature over the kept candidates.
  const float max_logit = candidates_[0].first;
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    candidates_[i].first = std::exp((candidates_[i].first - max_logit) / p_.temperature);
    total += candidates_[i].first;
  }
  for (size_t i = 0; i < n; i++) candidates_[i].first = float(candidates_[i].first / total);
  if (p_.top_p < 1.0f) {
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < n) {
      cumulative += candidates_[keep++].first;
      if (cumulative >= p_.top_p) break;
    }
    n = std::max<size_t>(keep, 1);
  }
  if (p_.min_p > 0.0f) {
    const float floor = candidates_[0].first * p_.min_p;
    size_t keep = 1;
    while (keep < n && candidates_[keep].first >= floor) keep++;
    n = keep;
  }
  double mass = 0.0;
  for (size_t i = 0; i < n; i++) mass += candidates_[i].first;
  std::uniform_real_distribution<double> uniform(0.0, mass);
  double r = uniform(rng_);
  for (size_t i = 0; i < n; i++) {
    r -= candidates_[i].first;
    if (r <= 0.0) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

void Sampler::penalty_window(const std::vector<int32_t>& history, std::vector<int32_t>& out) const {
  out.clear();
  if (p_.repeat_penalty == 1.0f || p_.repeat_last_n == 0) return;
  const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(p_.repeat_last_n));
  out.assign(history.end() - n, history.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

int Sampler::candidates_needed(const std::vector<int32_t>& history, int vocab, int max) const {
  int k;
  if (p_.temperature <= 0.0f)
    k = 1;
  else if (p_.top_k > 0)
    k = p_.top_k;
  else
    return 0;
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0) {
    if (!(p_.repeat_penalty > 1.0f)) return 0;  // a penalty < 1 can lift a token from anywhere
    std::vector<int32_t> window;
    penalty_window(history, window);
    for (int32_t id : window) k += id >= 0 && id < vocab;
  }
  k = std::min(k, vocab);
  return k <= max ? k : 0;
}

int32_t Sampler::sample_best(const float* logits, const int32_t* ids, int n, const std::vector<int32_t>& history) {
  candidates_.clear();
  for (int i = 0; i < n; i++) candidates_.emplace_back(logits[i], ids[i]);
  penalty_window(history, window_);
  if (!window_.empty()) {
    // The same penalty as sample(), on the candidates that carry a penalized id; then back in order.
    for (auto& c : candidates_)
      if (std::binary_search(window_.begin(), window_.end(), c.second))
        c.first = c.first > 0 ? c.first / p_.repeat_penalty : c.first * p_.repeat_penalty;
    std::sort(candidates_.begin(), candidates_.end(),
              [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  }
  if (p_.temperature <= 0.0f) return candidates_[0].second;  // max_element's pick: the largest, lowest id
  return draw(std::min(candidates_.size(), size_t(p_.top_k)));
}

std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int vocab, int k) {
  float max_logit = -INFINITY;
  for (int i = 0; i < vocab; i++) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; i++) sum += std::exp(double(logits[i]) - max_logit);
  const float log_z = float(max_logit + std::log(sum));
  k = std::clamp(k, 0, vocab);
  std::vector<int32_t> ids(vocab);
  for (int i = 0; i < vocab; i++) ids[i] = i;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(k);
  for (int i = 0; i < k; i++) out.emplace_back(ids[i], logits[ids[i]] - log_z);
  return out;
}

}  // namespace ilm
