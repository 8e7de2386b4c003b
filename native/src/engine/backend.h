#pragma once
// The seam between sessions and the hardware: a backend owns its KV caches and runs the
// forward pass. The CPU backend lives in cpu/, the CUDA one in cuda/.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/kv_type.h"
#include "model/model.h"

namespace ilm {

// Per-session attention state (K after RoPE, V) for up to capacity() positions.
class KVCache {
 public:
  virtual ~KVCache() = default;
  virtual int capacity() const = 0;
  // Grows the cache to hold at least n positions (keeps contents); throws ilm::Error if it can't.
  // A growth may take headroom (fewer regrowths) but not past growth_limit() (the CUDA cache
  // rounds capacities up to a multiple of 64 positions).
  virtual void reserve(int n) = 0;
  // The most positions its owner will ever ask for (a session's context): memory planned for a
  // context must not be exceeded by a cache's growth headroom.
  void limit_growth(int positions) { growth_limit_ = positions > 0 ? positions : INT32_MAX; }
  int growth_limit() const { return growth_limit_; }
  virtual KVType type() const = 0;

  // Raw rows for saving and restoring a cache. One position's row holds all KV heads of one layer's
  // K (value=false) or V in the cache's own type: position_bytes() bytes. Copies positions
  // [from, from + n), which must lie within capacity(), to dst / from src.
  virtual size_t position_bytes() const = 0;
  virtual void read_rows(int layer, bool value, int from, int n, void* dst) const = 0;
  virtual void write_rows(int layer, bool value, int from, int n, const void* src) = 0;

 private:
  int growth_limit_ = INT32_MAX;
};

struct ForwardRequest {
  const int32_t* tokens = nullptr;
  int n_tokens = 0;
  int start_pos = 0;         // position of tokens[0]; the cache holds [0, start_pos)
  float rope_base = 0.0f;    // the session's base (dynamic NTK already applied)
  // Logits wanted for positions [logits_from, n_tokens) of this batch; logits_from == n_tokens
  // means none. Written row by row (vocab floats each) to logits_out.
  int logits_from = 0;
  float* logits_out = nullptr;
  // Decode without the whole logits row: top_k > 0 (at most max_device_top_k()) asks for only the
  // top_k best (logit, id) pairs of the batch's last position, best first with ties to the lower id
  // (the sampler's order), written to top_logits / top_ids; logits_from and logits_out are then
  // ignored. Only backends that reduce on their device take it.
  int top_k = 0;
  float* top_logits = nullptr;
  int32_t* top_ids = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // type: the cache's element type; throws ilm::Error when this backend does not offer it.
  virtual std::unique_ptr<KVCache> create_cache(int initial_capacity, KVType type) = 0;
  std::unique_ptr<KVCache> create_cache(int initial_capacity) {
    return create_cache(initial_capacity, default_kv_type());
  }
  // The type a session gets when it asks for none: f32 on the CPU (bit-for-bit llama.cpp F32-KV
  // parity), the cache's native type elsewhere.
  virtual KVType default_kv_type() const { return KVType::F32; }
  // Runs one chunk. The caller splits long inputs into chunks of at most max_batch() tokens.
  virtual void forward(KVCache& cache, const ForwardRequest& request) = 0;
  virtual int max_batch() const = 0;
  // The largest ForwardRequest::top_k this backend reduces on its device; 0 (the CPU): none, the
  // caller asks for whole logits rows.
  virtual int max_device_top_k() const { return 0; }
  virtual void set_threads(int n) = 0;
  virtual int threads() const = 0;
  // Free memory of the device the KV caches live on, after the weights and the backend's own
  // buffers; 0 when they live in host RAM (the CPU).
  virtual uint64_t device_free_bytes() const { return 0; }
};

std::unique_ptr<Backend> create_cpu_backend(const Model& model, int threads);

// Picks and creates a backend (engine/backend_factory.cpp). device: "auto" (a CUDA GPU when one
// is usable and the model fits, else the CPU), "cpu", "cuda" or "cuda:N". *chosen_description
// says what was picked and, for "auto" on the CPU, why: "cuda:0 (NVIDIA H200, 139 GiB)",
// "cpu (no CUDA device: ...)". Throws ilm::Error for an unusable explicit choice.
std::unique_ptr<Backend> create_backend(const Model& model, const std::string& device, int threads,
                                        std::string* chosen_description);

// The backends this build includes: "cpu", plus "cuda" when it was built with CUDA.
std::vector<std::string> available_backends();

// Where "auto" puts the weights for `device`: the CPU streams every weight per token and wants them
// in huge-page RAM (util/mapped_file.h); a GPU copies them once, so the mapping is enough there.
LoadOptions::Weights auto_weights_for(const std::string& device);

}  // namespace ilm
