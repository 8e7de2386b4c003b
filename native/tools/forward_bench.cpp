// Times the CPU forward pass without Node: `forward_bench MODEL [PROMPT] [GEN] [THREADS] [REPS]`.
// Each round prefills PROMPT tokens (logits for the last only) and decodes GEN tokens one by one
// into a fresh cache; prints per round wall and process-CPU tok/s and the medians. CPU time counts
// only this process's threads, so it is steadier than wall time on a shared machine (and is the
// one to read under `perf record`).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "engine/backend.h"
#include "model/model.h"

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: forward_bench MODEL [PROMPT=256] [GEN=64] [THREADS=1] [REPS=5]\n");
    return 2;
  }
  const int prompt = argc > 2 ? std::atoi(argv[2]) : 256;
  const int gen = argc > 3 ? std::atoi(argv[3]) : 64;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const int reps = argc > 5 ? std::atoi(argv[5]) : 5;
  try {
    auto model = ilm::load_model(argv[1], ilm::LoadOptions{}, {});
    auto backend = ilm::create_cpu_backend(*model, threads);
    const int vocab = model->config.vocab_size;
    std::vector<int32_t> tokens(prompt);
    for (int i = 0; i < prompt; i++) tokens[i] = 259 + (i * 7919) % (vocab - 259);
    std::vector<float> logits(vocab);
    std::vector<double> pw, pc, dw, dc;
    for (int rep = 0; rep < reps; rep++) {
      auto cache = backend->create_cache(prompt + gen);
      ilm::ForwardRequest req;
      req.rope_base = model->config.rope_theta;
      req.tokens = tokens.data();
      req.n_tokens = prompt;
      req.logits_from = prompt - 1;
      req.logits_out = logits.data();
      double w0 = wall_seconds(), c0 = cpu_seconds();
      backend->forward(*cache, req);
      double w1 = wall_seconds(), c1 = cpu_seconds();
      int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      for (int i = 0; i < gen; i++) {
        req.tokens = &next;
        req.n_tokens = 1;
        req.start_pos = prompt + i;
        req.logits_from = 0;
        backend->forward(*cache, req);
        next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      const double w2 = wall_seconds(), c2 = cpu_seconds();
      pw.push_back(prompt / (w1 - w0)), pc.push_back(prompt / (c1 - c0));
      dw.push_back(gen / (w2 - w1)), dc.push_back(gen / (c2 - c1));
      std::printf("round %d: prefill %.1f tok/s (cpu %.1f), decode %.1f tok/s (cpu %.1f)\n", rep + 1, pw.back(), pc.back(),
                  dw.back(), dc.back());
    }
    std::printf("median: prefill %.1f tok/s (cpu %.1f), decode %.1f tok/s (cpu %.1f)\n", median(pw), median(pc),
                median(dw), median(dc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forward_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
