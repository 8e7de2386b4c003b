// The CUDA backend's KV cache end to end, for bench/gpu-check.mjs. One JSON object per line.
//
//   cuda_kv_bench parity MODEL [--kv q8] [--prompt 200] [--steps 6] [--seed N]
//     Cache portability and decode accuracy per KV type, both ways: prefill on one backend, move
//     the rows (read_rows / write_rows, the bytes a saved cache file holds) into a cache of the
//     other, decode the same tokens on both and compare max |Δlogprob| over the top-20. The GPU
//     steps also ask for the device top-k (k = 1 and 64) of the same position and compare it with
//     a host sort of the GPU's own full row: it must be identical.
//
//   cuda_kv_bench long MODEL [--kv q8] [--prefill 131072] [--probes 0,131072,...] [--contexts
//                 131072,524288,1048576] [--steps 32] [--budget-s 240] [--rope-factor 2.5]
//     Long context on the GPU, quickest and most telling first: decode tok/s at each context over
//     a cache filled with random entries (BENCH-ONLY, labelled "filled": a step's cost depends on
//     the context length, not on the values) with the GPU memory in use at each; the time of one
//     1024-token chunk at each probe position (earlier positions filled alike) fitted as
//     a + b * position and summed into predicted prefill times for 128K / 512K / 1M; then a real
//     prefill of --prefill tokens, chunk by chunk, with what is left of the time budget (it stops
//     there and says so).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_util.h"
#include "cuda/cuda_weights.h"
#include "engine/backend.h"
#include "engine/rope.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "util/error.h"

using namespace ilm;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::map<std::string, std::string> parse(int argc, char** argv, int first) {
  std::map<std::string, std::string> o;
  for (int i = first; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) throw Error(std::string("unexpected argument ") + argv[i]);
    o[argv[i] + 2] = argv[i + 1];
  }
  return o;
}

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t comma = s.find(',', at);
    out.push_back(std::atoi(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at).c_str()));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

double gpu_used_gib() {
  size_t free_bytes = 0, total = 0;
  cuda::memory_info(&free_bytes, &total);
  return cuda::gib(total - free_bytes);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// A number for a JSON line: null when not finite (JSON has no nan / inf).
std::string json_number(double v, const char* format) {
  if (!std::isfinite(v)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Log-softmax of one row, then the k best (id, logprob).
std::vector<std::pair<int32_t, float>> top(const std::vector<float>& logits, int k) {
  return top_logprobs(logits.data(), int(logits.size()), k);
}

double max_delta(const std::vector<std::pair<int32_t, float>>& ref, const std::vector<std::pair<int32_t, float>>& other) {
  double worst = 0;
  for (const auto& r : ref) {
    const int32_t id = r.first;
    auto it = std::find_if(other.begin(), other.end(), [&](const auto& p) { return p.first == id; });
    const double d = it == other.end() ? double(INFINITY) : std::fabs(double(r.second) - it->second);
    if (!(d <= worst)) worst = d;  // NaN too (std::max would drop it): it must fail
  }
  return worst;
}

// Runs `n` tokens through a backend from position `start`, chunked; logits of the last one to *last.
void run(Backend& b, KVCache& cache, const std::vector<int32_t>& tokens, int start, int n, float base,
         std::vector<float>* last) {
  for (int done = 0; done < n; done += b.max_batch()) {
    const int nt = std::min(b.max_batch(), n - done);
    ForwardRequest req;
    req.tokens = tokens.data() + start + done;
    req.n_tokens = nt;
    req.start_pos = start + done;
    req.rope_base = base;
    const bool want = last && done + nt == n;
    req.logits_from = want ? nt - 1 : nt;
    req.logits_out = want ? last->data() : nullptr;
    b.forward(cache, req);
  }
}

void copy_cache(const KVCache& from, KVCache& to, int layers, int n) {
  std::vector<uint8_t> buf(from.position_bytes() * size_t(n));
  if (from.position_bytes() != to.position_bytes()) throw Error("position sizes differ between the backends");
  for (int l = 0; l < layers; l++)
    for (bool v : {false, true}) {
      from.read_rows(l, v, 0, n, buf.data());
      to.write_rows(l, v, 0, n, buf.data());
    }
}

int parity(const std::string& path, std::map<std::string, std::string>& o) {
  const KVType kv = parse_kv_type(o.count("kv") ? o["kv"] : "q8");
  const int prompt = o.count("prompt") ? std::atoi(o["prompt"].c_str()) : 200;
  const int steps = o.count("steps") ? std::atoi(o["steps"].c_str()) : 6;
  const uint32_t seed = o.count("seed") ? uint32_t(std::stoul(o["seed"])) : 1;
  auto model = load_model(path, LoadOptions{}, {});
  const ModelConfig& c = model->config;
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  auto cpu = create_cpu_backend(*model, threads);
  auto gpu = cuda::create_cuda_backend(*model, 0, 1);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(3, c.vocab_size - 1);
  std::vector<int32_t> tokens(size_t(prompt + steps));
  tokens[0] = 1;
  for (size_t i = 1; i < tokens.size(); i++) tokens[i] = pick(rng);
  const float base = float(rope_base_for_length(c, prompt + steps));
  const int vocab = c.vocab_size;

  for (int direction = 0; direction < 2; direction++) {  // 0: CPU prefill -> GPU, 1: GPU prefill -> CPU
    Backend& a = direction == 0 ? *cpu : *gpu;
    Backend& b = direction == 0 ? *gpu : *cpu;
    auto ca = a.create_cache(prompt + steps, kv), cb = b.create_cache(prompt + steps, kv);
    run(a, *ca, tokens, 0, prompt, base, nullptr);
    copy_cache(*ca, *cb, c.n_layers, prompt);
    double worst = 0, worst_top = 0;
    size_t top_mismatch = 0;
    std::vector<float> la(vocab), lb(vocab), tv(cuda::kMaxTopK);
    std::vector<int32_t> ti(cuda::kMaxTopK);
    for (int s = 0; s < steps; s++) {
      const int pos = prompt + s;
      run(a, *ca, tokens, pos, 1, base, &la);
      run(b, *cb, tokens, pos, 1, base, &lb);
      const std::vector<float>& cpu_row = direction == 0 ? la : lb;
      const std::vector<float>& gpu_row = direction == 0 ? lb : la;
      const double d = max_delta(top(cpu_row, 20), top(gpu_row, 40));
      if (!(d <= worst)) worst = d;  // NaN too
      // The device top-k of the same position (the GPU recomputes it: same inputs, same bits).
      Backend& g = *gpu;
      KVCache& gc = direction == 0 ? *cb : *ca;
      for (int k : {1, 64}) {
        ForwardRequest req;
        req.tokens = tokens.data() + pos;
        req.n_tokens = 1;
        req.start_pos = pos;
        req.rope_base = base;
        req.logits_from = 1;
        req.top_k = k;
        req.top_logits = tv.data();
        req.top_ids = ti.data();
        g.forward(gc, req);
        std::vector<int32_t> ids(vocab);
        for (int i = 0; i < vocab; i++) ids[i] = i;
        std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t x, int32_t y) {
          return gpu_row[x] > gpu_row[y] || (gpu_row[x] == gpu_row[y] && x < y);
        });
        for (int i = 0; i < k; i++) {
          top_mismatch += ti[i] != ids[i];
          const double d = std::fabs(double(tv[i]) - double(gpu_row[ids[i]]));
          if (!(d <= worst_top)) worst_top = d;  // NaN too
        }
      }
    }
    // A token of the CPU's top-20 missing from the GPU's top-40 makes worst infinite; NaN logits
    // make either NaN. JSON has neither: null (gpu-check reads it as a failure).
    std::printf("{\"kind\":\"parity\",\"kv\":\"%s\",\"direction\":\"%s\",\"prompt\":%d,\"steps\":%d,\"max_delta\":%s,"
                "\"topk_id_mismatches\":%zu,\"topk_max_logit_diff\":%s}\n",
                kv_type_name(kv), direction == 0 ? "cpu->gpu" : "gpu->cpu", prompt, steps, json_number(worst, "%.4g").c_str(),
                top_mismatch, json_number(worst_top, "%.3g").c_str());
    std::fflush(stdout);
  }
  // Growth: a GPU cache made for one position and grown as rows arrive (as a session's prefill
  // grows it) must hold exactly the bytes written before each growth.
  {
    auto ref = cpu->create_cache(prompt, kv);
    run(*cpu, *ref, tokens, 0, prompt, base, nullptr);
    auto grown = gpu->create_cache(1, kv);
    const size_t bytes = ref->position_bytes() * size_t(prompt);
    std::vector<uint8_t> want(bytes), got(bytes);
    int growths = 0, capacity = grown->capacity();
    for (int at = 0, n = 0; at < prompt; at += n) {
      n = std::min(37, prompt - at);
      grown->reserve(at + n);
      if (grown->capacity() != capacity) growths++, capacity = grown->capacity();
      for (int l = 0; l < c.n_layers; l++)
        for (bool v : {false, true}) {
          ref->read_rows(l, v, at, n, want.data());
          grown->write_rows(l, v, at, n, want.data());
        }
    }
    size_t differing = 0;
    for (int l = 0; l < c.n_layers; l++)
      for (bool v : {false, true}) {
        ref->read_rows(l, v, 0, prompt, want.data());
        grown->read_rows(l, v, 0, prompt, got.data());
        for (size_t i = 0; i < bytes; i++) differing += want[i] != got[i];
      }
    std::printf("{\"kind\":\"growth\",\"kv\":\"%s\",\"positions\":%d,\"growths\":%d,\"capacity\":%d,\"differing_bytes\":%zu}\n",
                kv_type_name(kv), prompt, growths, grown->capacity(), differing);
    std::fflush(stdout);
  }
  // Greedy decoding through Sampler + device top-1 must pick the tokens the full row gives.
  {
    auto ca = gpu->create_cache(prompt + steps, kv), cb = gpu->create_cache(prompt + steps, kv);
    std::vector<float> row(vocab);
    run(*gpu, *ca, tokens, 0, prompt, base, &row);
    run(*gpu, *cb, tokens, 0, prompt, base, nullptr);
    SamplingParams sp;
    sp.temperature = 0.0f;
    Sampler full(sp), best(sp);
    std::vector<int32_t> history(tokens.begin(), tokens.begin() + prompt);
    int32_t a = full.sample(row.data(), vocab, history), b = a;
    size_t differ = 0;
    float tv = 0;
    int32_t ti = 0;
    for (int s = 0; s < steps; s++) {
      history.push_back(a);
      run(*gpu, *ca, std::vector<int32_t>(prompt + s + 1, a), prompt + s, 1, base, &row);
      ForwardRequest req;
      req.tokens = &b;
      req.n_tokens = 1;
      req.start_pos = prompt + s;
      req.rope_base = base;
      req.logits_from = 1;
      req.top_k = 1;
      req.top_logits = &tv;
      req.top_ids = &ti;
      gpu->forward(*cb, req);
      a = full.sample(row.data(), vocab, history);
      b = best.sample_best(&tv, &ti, 1, history);
      differ += a != b;
      b = a;  // keep both on one sequence
    }
    std::printf("{\"kind\":\"greedy\",\"kv\":\"%s\",\"steps\":%d,\"differing\":%zu}\n", kv_type_name(kv), steps, differ);
    std::fflush(stdout);
  }
  return 0;
}

int long_context(const std::string& path, std::map<std::string, std::string>& o) {
  const KVType kv = parse_kv_type(o.count("kv") ? o["kv"] : "q8");
  const int prefill = o.count("prefill") ? std::atoi(o["prefill"].c_str()) : 131072;
  const auto probes = int_list(o.count("probes") ? o["probes"] : "0,65536,131072,262144,524288,1047552");
  const auto contexts = int_list(o.count("contexts") ? o["contexts"] : "131072,524288,1048576");
  const int steps = o.count("steps") ? std::atoi(o["steps"].c_str()) : 32;
  const double budget = o.count("budget-s") ? std::atof(o["budget-s"].c_str()) : 240.0;
  LoadOptions lo;
  if (o.count("rope-factor")) {
    lo.override_scaling = true;
    lo.rope_scaling = RopeScaling::Dynamic;
    lo.rope_factor = float(std::atof(o["rope-factor"].c_str()));
  }
  const auto t_start = Clock::now();
  auto model = load_model(path, lo, {});
  const ModelConfig& c = model->config;
  auto gpu = cuda::create_cuda_backend(*model, 0, 1);
  const double base_gib = gpu_used_gib();
  size_t weights_read = cuda::weight_bytes(*model);
  weights_read -= size_t(model->weights.tok_embd.rows()) * model->weights.tok_embd.row_bytes();
  weights_read += model->weights.tok_embd.row_bytes();  // decode reads one embedding row
  const double kv_per_token = 2.0 * c.n_layers * double(c.n_kv_heads) * double(kv_row_bytes(kv, c.head_dim));
  std::printf("{\"kind\":\"setup\",\"kv\":\"%s\",\"load_s\":%.1f,\"gpu_used_gib\":%.2f,\"weight_bytes_per_token\":%zu,"
              "\"kv_bytes_per_token\":%.0f,\"rope_scaling\":\"%s\",\"rope_factor\":%.2f,\"context_length\":%d}\n",
              kv_type_name(kv), seconds_since(t_start), base_gib, weights_read, kv_per_token,
              c.rope_scaling == RopeScaling::Dynamic ? "dynamic" : "none", c.rope_factor, c.context_length);
  std::fflush(stdout);
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> pick(3, c.vocab_size - 1);
  const int chunk = gpu->max_batch();
  auto over_budget = [&] { return seconds_since(t_start) > budget; };

  // 1. Decode at each context over a filled cache (BENCH-ONLY fill), device argmax per step.
  for (int ctx : contexts) {
    if (over_budget()) {
      std::printf("{\"kind\":\"skipped\",\"what\":\"decode at %d\",\"why\":\"time budget\"}\n", ctx);
      std::fflush(stdout);
      continue;
    }
    try {
      auto cache = gpu->create_cache(ctx + steps + 1, kv);
      cuda::bench_fill_cache(*cache, *gpu, ctx, uint32_t(ctx) ^ 0x5eed);
      const double used = gpu_used_gib();
      const float base = float(rope_base_for_length(c, ctx + steps));
      int32_t token = pick(rng);
      float tv = 0;
      int32_t ti = 0;
      std::vector<double> times;
      for (int s = -2; s < steps; s++) {  // two warm-up steps (the first captures the graph)
        ForwardRequest req;
        req.tokens = &token;
        req.n_tokens = 1;
        req.start_pos = ctx + std::max(s, 0);
        req.rope_base = base;
        req.logits_from = 1;
        req.top_k = 1;
        req.top_logits = &tv;
        req.top_ids = &ti;
        const auto t0 = Clock::now();
        gpu->forward(*cache, req);
        if (s >= 0) times.push_back(seconds_since(t0));
        token = ti;
      }
      std::sort(times.begin(), times.end());
      const double median = times[times.size() / 2];
      double mean = 0;
      for (double t : times) mean += t;
      mean /= double(times.size());
      std::printf("{\"kind\":\"decode\",\"kv\":\"%s\",\"context\":%d,\"steps\":%d,\"tok_per_s\":%.2f,\"mean_tok_per_s\":%.2f,"
                  "\"bytes_per_token\":%.0f,\"gpu_used_gib\":%.2f,\"filled\":true,\"finite\":%s}\n",
                  kv_type_name(kv), ctx, steps, 1.0 / median, 1.0 / mean, double(weights_read) + kv_per_token * (ctx + steps / 2.0),
                  used, std::isfinite(tv) ? "true" : "false");
    } catch (const std::exception& e) {
      std::printf("{\"kind\":\"error\",\"what\":\"decode at %d\",\"message\":\"%s\"}\n", ctx, json_escape(e.what()).c_str());
    }
    std::fflush(stdout);
  }
  // 2. One chunk at each probe position, over a cache filled (BENCH-ONLY) up to it.
  std::vector<std::pair<double, double>> samples;  // (position, seconds)
  {
    int top = 0;
    for (int p : probes) top = std::max(top, p);
    std::vector<int32_t> tokens(static_cast<size_t>(chunk));
    for (auto& t : tokens) t = pick(rng);
    auto cache = gpu->create_cache(top + chunk, kv);
    for (int p : probes) {
      if (over_budget()) {
        std::printf("{\"kind\":\"skipped\",\"what\":\"prefill probe at %d\",\"why\":\"time budget\"}\n", p);
        continue;
      }
      if (p > 0) cuda::bench_fill_cache(*cache, *gpu, p, uint32_t(p));
      ForwardRequest req;
      req.tokens = tokens.data();
      req.n_tokens = chunk;
      req.start_pos = p;
      req.rope_base = float(rope_base_for_length(c, p + chunk));
      req.logits_from = chunk;
      if (samples.empty()) gpu->forward(*cache, req);  // warm-up (module loading, first allocations)
      const auto t0 = Clock::now();
      gpu->forward(*cache, req);
      const double s = seconds_since(t0);
      samples.push_back({double(p), s});
      std::printf("{\"kind\":\"prefill_chunk\",\"kv\":\"%s\",\"position\":%d,\"tokens\":%d,\"seconds\":%.4f,\"filled\":true}\n",
                  kv_type_name(kv), p, chunk, s);
      std::fflush(stdout);
    }
  }
  if (samples.size() >= 2) {
    // Least squares t = a + b * position; a prefill of L tokens is the sum over its chunks.
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& [x, y] : samples) sx += x, sy += y, sxx += x * x, sxy += x * y;
    const double n = double(samples.size());
    const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
    for (int L : {131072, 524288, 1048576}) {
      const double chunks = double(L) / chunk;
      const double predicted = chunks * a + b * chunk * chunks * (chunks - 1) / 2;
      std::printf("{\"kind\":\"prefill_model\",\"kv\":\"%s\",\"tokens\":%d,\"predicted_s\":%.1f,\"chunk_a_s\":%.4g,"
                  "\"chunk_b_s_per_pos\":%.4g,\"kv_gib\":%.2f}\n",
                  kv_type_name(kv), L, predicted, a, b, kv_per_token * L / double(1ull << 30));
    }
    std::fflush(stdout);
  }

  // 3. A real prefill (progress every 8 chunks; stops at the budget, which it gets last).
  if (prefill > 0) {
    std::vector<int32_t> tokens(static_cast<size_t>(prefill));
    for (auto& t : tokens) t = pick(rng);
    tokens[0] = 1;
    const float base = float(rope_base_for_length(c, prefill));
    auto cache = gpu->create_cache(prefill, kv);
    const auto t0 = Clock::now();
    int done = 0;
    std::vector<float> last(c.vocab_size);
    while (done < prefill) {
      const int nt = std::min(chunk, prefill - done);
      ForwardRequest req;
      req.tokens = tokens.data() + done;
      req.n_tokens = nt;
      req.start_pos = done;
      req.rope_base = base;
      const bool is_last = done + nt == prefill;
      req.logits_from = is_last ? nt - 1 : nt;
      req.logits_out = is_last ? last.data() : nullptr;
      gpu->forward(*cache, req);
      done += nt;
      if ((done / chunk) % 8 == 0 || is_last)
        std::fprintf(stderr, "prefill %d / %d tokens, %.1f s\n", done, prefill, seconds_since(t0));
      if (!is_last && over_budget()) break;
    }
    const double s = seconds_since(t0);
    bool finite = true;
    if (done == prefill)
      for (float v : last) finite = finite && std::isfinite(v);
    std::printf("{\"kind\":\"prefill\",\"kv\":\"%s\",\"tokens\":%d,\"target\":%d,\"complete\":%s,\"seconds\":%.2f,"
                "\"tok_per_s\":%.1f,\"gpu_used_gib\":%.2f,\"rope_base\":%.6g,\"logits_finite\":%s}\n",
                kv_type_name(kv), done, prefill, done == prefill ? "true" : "false", s, done / s, gpu_used_gib(), base,
                finite ? "true" : "false");
    std::fflush(stdout);
  }

  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: cuda_kv_bench parity|long MODEL [--option value ...]\n");
    return 2;
  }
  try {
    std::string reason;
    if (cuda::list_devices(&reason).empty()) {
      std::printf("{\"kind\":\"device\",\"error\":\"%s\"}\n", json_escape(reason).c_str());
      return 1;
    }
    auto o = parse(argc, argv, 3);
    const std::string mode = argv[1];
    if (mode == "parity") return parity(argv[2], o);
    if (mode == "long") return long_context(argv[2], o);
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::printf("{\"kind\":\"error\",\"message\":\"%s\"}\n", json_escape(e.what()).c_str());
    return 1;
  }
}
