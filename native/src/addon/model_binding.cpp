// JS classes Model and Session over the engine. Engine work runs on its own threads (async.h);
// state shared with those threads is reference-counted so dispose() never pulls memory from
// under a running generation: it cancels, and the last user frees.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

#include "addon/async.h"
#include "addon/bindings.h"
#include "cpu/thread_pool.h"
#include "engine/backend.h"
#include "engine/generate.h"
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/fingerprint.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace ilm::addon {
namespace {

struct ModelState {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  std::string device;  // what create_backend chose, e.g. "cuda:0 (NVIDIA H200, 139 GiB)"
};

// The memory plan of where this model's KV caches live: the GPU's free memory when the backend
// has one, else host RAM (memory: the RAM to plan for, 0 = MemAvailable).
MemoryPlan plan_for(const ModelState& m, uint64_t memory) {
  if (const uint64_t free_bytes = m.backend->device_free_bytes()) return plan_device_memory(*m.model, free_bytes);
  return plan_memory(*m.model, m.backend->max_batch(), memory);
}

struct SessionState {
  std::shared_ptr<ModelState> model;
  std::unique_ptr<Session> session;
  std::atomic<bool> cancel{false};
  std::atomic<bool> busy{false};
};

// Marks a session busy for the lifetime of one async call.
class BusyGuard {
 public:
  explicit BusyGuard(std::shared_ptr<SessionState> s) : s_(std::move(s)) {}
  ~BusyGuard() { s_->busy.store(false); }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  std::shared_ptr<SessionState> s_;
};

std::vector<int32_t> to_ids(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Error(std::string(what) + " must be an array of token ids");
  const auto arr = v.As<Napi::Array>();
  std::vector<int32_t> ids(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) throw Error(std::string(what) + " must contain only numbers");
    ids[i] = e.As<Napi::Number>().Int32Value();
  }
  return ids;
}

Napi::Array from_ids(Napi::Env env, const std::vector<int32_t>& ids) {
  auto arr = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) arr.Set(uint32_t(i), Napi::Number::New(env, ids[i]));
  return arr;
}

double number_or(const Napi::Object& o, const char* key, double fallback) {
  const Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// A JS callback kept alive for an async call; null when v is not a function.
std::shared_ptr<Napi::FunctionReference> optional_callback(const Napi::Value& v) {
  if (!v.IsFunction()) return nullptr;
  return std::make_shared<Napi::FunctionReference>(Napi::Persistent(v.As<Napi::Function>()));
}

// Prefill progress delivered to a JS callback through the call's ordered task queue; an empty
// function (so the engine skips reporting) when there is no callback.
PrefillProgress post_progress(const Post& post, const std::shared_ptr<Napi::FunctionReference>& callback) {
  if (!callback) return nullptr;
  return [&post, callback](int done, int total) {
    post([callback, done, total](Napi::Env env) {
      if (!callback->IsEmpty()) callback->Call({Napi::Number::New(env, done), Napi::Number::New(env, total)});
    });
  };
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void check_ids(const std::vector<int32_t>& ids, int vocab) {
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      throw Error("token id " + std::to_string(id) + " is out of range (vocabulary has " + std::to_string(vocab) + " tokens)");
}

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::FunctionReference constructor;

  static void Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "Session", {
      InstanceMethod<&SessionWrap::RopeBase>("ropeBase"),
      InstanceMethod<&SessionWrap::Length>("length"),
      InstanceMethod<&SessionWrap::CacheCapacity>("cacheCapacity"),
      InstanceMethod<&SessionWrap::Tokens>("tokens"),
      InstanceMethod<&SessionWrap::Evaluate>("evaluate"),
      InstanceMethod<&SessionWrap::Generate>("generate"),
      InstanceMethod<&SessionWrap::Cancel>("cancel"),
      InstanceMethod<&SessionWrap::Truncate>("truncate"),
      InstanceMethod<&SessionWrap::Save>("save"),
      InstanceMethod<&SessionWrap::Restore>("restore"),
      InstanceMethod<&SessionWrap::Dispose>("dispose"),
    });
    constructor = Napi::Persistent(fn);
  }

  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {}
  void attach(std::shared_ptr<SessionState> s) { state_ = std::move(s); }

 private:
  SessionState& live(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "this session has been disposed");
    return *state_;
  }

  // Claims the session for one async call; a second concurrent call is an error, not a queue.
  std::shared_ptr<SessionState> claim(Napi::Env env) {
    live(env);
    if (state_->busy.exchange(true)) throw Napi::Error::New(env, "this session is busy with another request");
    state_->cancel.store(false);
    return state_;
  }

  Napi::Value RopeBase(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env()).session->rope_base()); }
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env()).session->length()); }
  Napi::Value CacheCapacity(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live(info.Env()).session->cache_capacity());
  }
  Napi::Value Tokens(const Napi::CallbackInfo& info) { return from_ids(info.Env(), live(info.Env()).session->tokens()); }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      auto tokens = to_ids(info[0], "tokens");
      const int top_k = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
      check_ids(tokens, live(env).model->model->config.vocab_size);
      if (tokens.empty()) throw Error("nothing to evaluate: tokens is empty");
      auto on_progress = optional_callback(info[2]);
      const int rope_length = info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;
      auto s = claim(env);
      struct Out {
        std::vector<std::vector<std::pair<int32_t, float>>> top;
        float rope_base = 0;
        double ms = 0;
      };
      return run_async<Out>(env, [s, tokens = std::move(tokens), top_k, on_progress, rope_length](const Post& post) {
        BusyGuard busy(s);
        Out out;
        const int vocab = s->model->model->config.vocab_size;
        const auto start = std::chrono::steady_clock::now();
        out.top.resize(top_k > 0 ? tokens.size() : 0);
        s->session->append(tokens, top_k > 0 ? 0 : int(tokens.size()),
                           [&](int i, const float* logits) { out.top[i] = top_logprobs(logits, vocab, top_k); }, s->cancel,
                           post_progress(post, on_progress), rope_length);
        out.rope_base = s->session->rope_base();
        out.ms = ms_since(start);
        return out;
      }, [on_progress](Napi::Env env, Out& out) -> Napi::Value {
        if (on_progress) on_progress->Reset();
        auto result = Napi::Object::New(env);
        auto top = Napi::Array::New(env, out.top.size());
        for (size_t i = 0; i < out.top.size(); i++) {
          auto row = Napi::Array::New(env, out.top[i].size());
          for (size_t j = 0; j < out.top[i].size(); j++) {
            auto pair = Napi::Array::New(env, 2);
            pair.Set(0u, Napi::Number::New(env, out.top[i][j].first));
            pair.Set(1u, Napi::Number::New(env, out.top[i][j].second));
            row.Set(uint32_t(j), pair);
          }
          top.Set(uint32_t(i), row);
        }
        result.Set("top", top);
        result.Set("ropeBase", Napi::Number::New(env, out.rope_base));
        result.Set("cachedTokens", Napi::Number::New(env, 0));
        result.Set("ms", Napi::Number::New(env, out.ms));
        return result;
      });
    });
  }

  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      if (!info[0].IsObject()) throw Error("generate needs an options object");
      const auto o = info[0].As<Napi::Object>();
      const ModelState& m = *live(env).model;
      auto prompt = to_ids(o.Get("prompt"), "prompt");
      check_ids(prompt, m.model->config.vocab_size);
      GenerateParams params;
      params.max_tokens = int(number_or(o, "maxTokens", 256));
      params.sampling.temperature = float(number_or(o, "temperature", 0.8));
      params.sampling.top_k = int(number_or(o, "topK", 0));
      params.sampling.top_p = float(number_or(o, "topP", 1.0));
      params.sampling.min_p = float(number_or(o, "minP", 0.0));
      params.sampling.repeat_penalty = float(number_or(o, "repeatPenalty", 1.0));
      params.sampling.repeat_last_n = int(number_or(o, "repeatLastN", 64));
      params.rope_length = int(number_or(o, "ropeLength", 0));
      if (o.Get("seed").IsNumber()) {
        params.sampling.seed = uint64_t(o.Get("seed").As<Napi::Number>().Int64Value());
        params.sampling.has_seed = true;
      }
      params.stop_tokens = o.Get("stopTokens").IsArray() ? to_ids(o.Get("stopTokens"), "stopTokens") : m.model->stop_tokens;
      if (o.Get("stopStrings").IsArray()) {
        const auto arr = o.Get("stopStrings").As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); i++) params.stop_strings.push_back(arr.Get(i).ToString().Utf8Value());
      }
      auto on_text = std::make_shared<Napi::FunctionReference>();
      if (info[1].IsFunction()) *on_text = Napi::Persistent(info[1].As<Napi::Function>());
      auto on_progress = optional_callback(info[2]);
      auto s = claim(env);
      return run_async<GenerateResult>(env, [s, prompt = std::move(prompt), params, on_text, on_progress](const Post& post) {
        BusyGuard busy(s);
        return generate(*s->session, *s->model->tokenizer, prompt, params, [&](const std::string& text) {
          post([on_text, text](Napi::Env env) {
            if (!on_text->IsEmpty()) on_text->Call({Napi::String::New(env, text)});
          });
        }, s->cancel, post_progress(post, on_progress));
      }, [on_text, on_progress](Napi::Env env, GenerateResult& r) -> Napi::Value {
        on_text->Reset();
        if (on_progress) on_progress->Reset();
        auto result = Napi::Object::New(env);
        result.Set("text", Napi::String::New(env, r.text));
        result.Set("tokens", from_ids(env, r.tokens));
        result.Set("finishReason", Napi::String::New(env, finish_reason_name(r.finish_reason)));
        result.Set("promptTokens", Napi::Number::New(env, r.prompt_tokens));
        result.Set("cachedTokens", Napi::Number::New(env, r.cached_tokens));
        result.Set("promptMs", Napi::Number::New(env, r.prompt_ms));
        result.Set("generateMs", Napi::Number::New(env, r.generate_ms));
        return result;
      });
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    if (state_) state_->cancel.store(true);
    return info.Env().Undefined();
  }

  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto& s = live(env);
    if (s.busy.load()) throw Napi::Error::New(env, "cannot truncate a session while it is busy");
    s.session->truncate(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  }

  // save(path, length?): writes the first `length` positions (default: all) to path.
  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      if (!info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty()) throw Error("save needs a file path");
      const std::string path = info[0].As<Napi::String>().Utf8Value();
      int length = -1;
      if (!info[1].IsUndefined()) {
        const double v = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
        if (!(v >= 1 && v <= 2147483647.0 && v == double(int64_t(v)))) throw Error("length must be a positive whole number");
        length = int(v);
      }
      auto s = claim(env);
      struct Out {
        uint64_t bytes = 0;
        int tokens = 0;
        double ms = 0;
      };
      return run_async<Out>(env, [s, path, length](const Post&) {
        BusyGuard busy(s);
        const auto start = std::chrono::steady_clock::now();
        Out out;
        out.tokens = length < 0 ? s->session->length() : length;
        out.bytes = s->session->save(path, out.tokens);
        out.ms = ms_since(start);
        return out;
      }, [](Napi::Env env, Out& out) -> Napi::Value {
        auto result = Napi::Object::New(env);
        result.Set("bytes", Napi::Number::New(env, double(out.bytes)));
        result.Set("tokens", Napi::Number::New(env, out.tokens));
        result.Set("ms", Napi::Number::New(env, out.ms));
        return result;
      });
    });
  }

  Napi::Value Restore(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      if (!info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty()) throw Error("restore needs a file path");
      const std::string path = info[0].As<Napi::String>().Utf8Value();
      auto s = claim(env);
      struct Out {
        int tokens = 0;
        float rope_base = 0;
        double ms = 0;
      };
      return run_async<Out>(env, [s, path](const Post&) {
        BusyGuard busy(s);
        const auto start = std::chrono::steady_clock::now();
        s->session->restore(path);
        Out out;
        out.tokens = s->session->length();
        out.rope_base = s->session->rope_base();
        out.ms = ms_since(start);
        return out;
      }, [](Napi::Env env, Out& out) -> Napi::Value {
        auto result = Napi::Object::New(env);
        result.Set("tokens", Napi::Number::New(env, out.tokens));
        result.Set("ropeBase", Napi::Number::New(env, out.rope_base));
        result.Set("ms", Napi::Number::New(env, out.ms));
        return result;
      });
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (state_) {
      state_->cancel.store(true);
      state_.reset();  // a running call keeps its own reference and frees the session when it ends
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<SessionState> state_;
};

Napi::FunctionReference SessionWrap::constructor;

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference constructor;

  static void Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "Model", {
      InstanceMethod<&ModelWrap::Info>("info"),
      InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
      InstanceMethod<&ModelWrap::Detokenize>("detokenize"),
      InstanceMethod<&ModelWrap::CreateSession>("createSession"),
      InstanceMethod<&ModelWrap::MemoryPlan>("memoryPlan"),
      InstanceMethod<&ModelWrap::Dispose>("dispose"),
    });
    constructor = Napi::Persistent(fn);
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}
  void attach(std::shared_ptr<ModelState> s) { state_ = std::move(s); }

 private:
  ModelState& live(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "this model has been disposed");
    return *state_;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ModelState& s = live(env);
    const Model& m = *s.model;
    const ModelConfig& c = m.config;
    auto o = Napi::Object::New(env);
    o.Set("path", m.path);
    o.Set("format", m.format);
    o.Set("name", m.name);
    o.Set("architecture", "internlm2");
    o.Set("vocabSize", c.vocab_size);
    o.Set("contextLength", c.context_length);
    o.Set("embeddingLength", c.dim);
    o.Set("blockCount", c.n_layers);
    o.Set("headCount", c.n_heads);
    o.Set("headCountKv", c.n_kv_heads);
    o.Set("headDim", c.head_dim);
    o.Set("feedForwardLength", c.ffn_dim);
    o.Set("rmsNormEps", c.norm_eps);
    o.Set("ropeFreqBase", c.rope_theta);
    auto scaling = Napi::Object::New(env);
    scaling.Set("type", c.rope_scaling == RopeScaling::Dynamic ? "dynamic" : "none");
    scaling.Set("factor", c.rope_factor);
    o.Set("ropeScaling", scaling);
    o.Set("ropeLayout", c.rope_layout == RopeLayout::Pairwise ? "pairwise" : "rotate-half");

    std::map<std::string, int> types;
    double params = 0;
    auto count = [&](const Tensor& t) {
      if (t.empty()) return;
      types[dtype_name(t.type)]++;
      params += double(t.ne[0]) * double(t.ne[1]);
    };
    count(m.weights.tok_embd);
    count(m.weights.output);
    params += double(m.weights.output_norm.size());
    for (const auto& L : m.weights.layers) {
      for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.w1, &L.w2, &L.w3}) count(*t);
      params += double(L.attn_norm.size() + L.ffn_norm.size());
    }
    auto type_counts = Napi::Object::New(env);
    for (const auto& [name, n] : types) type_counts.Set(name, n);
    o.Set("weightTypes", type_counts);
    o.Set("parameterCount", params);
    o.Set("fileBytes", double(m.file_bytes));
    o.Set("weights", m.weights_in_ram ? "ram" : "mapped");
    o.Set("fingerprint", fingerprint_hex(m.fingerprint));
    o.Set("bosId", m.vocab.bos_id);
    o.Set("eosId", m.vocab.eos_id);
    o.Set("stopTokens", from_ids(env, m.stop_tokens));
    const std::vector<std::string> available = available_backends();
    auto backends = Napi::Array::New(env, available.size());
    for (size_t i = 0; i < available.size(); i++) backends.Set(uint32_t(i), available[i]);
    o.Set("backends", backends);
    o.Set("device", s.device);
    o.Set("threads", s.backend->threads());
    return o;
  }

  Napi::Value Tokenize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      if (!info[0].IsString()) throw Error("tokenize needs a string");
      return from_ids(env, live(env).tokenizer->encode(info[0].As<Napi::String>().Utf8Value(), info[1].ToBoolean()));
    });
  }

  Napi::Value Detokenize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      const auto ids = to_ids(info[0], "ids");
      check_ids(ids, live(env).model->config.vocab_size);
      return Napi::String::New(env, live(env).tokenizer->decode(ids));
    });
  }

  // The CPU memory plan (engine/memory_plan.h); info[0]: RAM to plan for (default MemAvailable).
  Napi::Value MemoryPlan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      ModelState& m = live(env);
      const uint64_t memory = info[0].IsNumber() ? uint64_t(info[0].As<Napi::Number>().DoubleValue()) : 0;
      const ilm::MemoryPlan p = plan_for(m, memory);
      auto o = Napi::Object::New(env);
      o.Set("device", p.on_device ? m.device.substr(0, m.device.find(' ')) : std::string("cpu"));
      o.Set("memoryBytes", double(p.memory_bytes));
      o.Set("weightsBytes", double(p.weights_bytes));
      o.Set("workspaceBytes", double(p.workspace_bytes));
      o.Set("weightsInRam", m.model->weights_in_ram);
      o.Set("kvBudgetBytes", double(p.kv_budget_bytes));
      auto types = Napi::Object::New(env);
      for (int t = 0; t < ilm::MemoryPlan::kTypes; t++) {
        auto entry = Napi::Object::New(env);
        entry.Set("bytesPerToken", double(p.bytes_per_token[t]));
        entry.Set("maxContext", double(p.max_context[t]));
        types.Set(kv_type_name(KVType(t)), entry);
      }
      o.Set("kvTypes", types);
      return o;
    });
  }

  Napi::Value CreateSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      ModelState& m = live(env);
      const int context = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
      if (context < 0) throw Error("contextLength must be positive");
      auto state = std::make_shared<SessionState>();
      state->model = state_;
      const KVType kv_type = info[1].IsString() ? parse_kv_type(info[1].As<Napi::String>().Utf8Value())
                                                : m.backend->default_kv_type();
      // checkMemory: fail now, naming the numbers, rather than when the cache outgrows RAM later.
      if (info[2].ToBoolean()) {
        const uint64_t positions = context > 0 ? context : std::max(m.model->config.context_length, 1);
        const std::string err = context_fit_error(plan_for(m, 0), kv_type, positions);
        if (!err.empty()) throw Error(err);
      }
      state->session = std::make_unique<Session>(*m.model, *m.backend, context, kv_type);
      Napi::Object obj = SessionWrap::constructor.New({});
      SessionWrap::Unwrap(obj)->attach(std::move(state));
      return obj;
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();  // sessions keep the model alive until they are disposed
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelState> state_;
};

Napi::FunctionReference ModelWrap::constructor;

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw Error("loadModel needs a model path");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    LoadOptions options;
    int threads = cpu::physical_core_count();
    std::string device = "auto";
    bool auto_weights = true;
    if (info[1].IsObject()) {
      const auto o = info[1].As<Napi::Object>();
      const Napi::Value dv = o.Get("device");
      if (dv.IsString()) device = dv.As<Napi::String>().Utf8Value();
      else if (!dv.IsUndefined()) throw Error("device must be a string: \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
      threads = int(number_or(o, "threads", threads));
      if (threads < 1 || threads > 1024) throw Error("threads must be between 1 and 1024");
      const Napi::Value scaling = o.Get("ropeScaling");
      if (scaling.IsString()) {
        const std::string s = scaling.As<Napi::String>().Utf8Value();
        if (s != "none" && s != "dynamic") throw Error("ropeScaling must be \"none\" or \"dynamic\", not \"" + s + "\"");
        options.override_scaling = true;
        options.rope_scaling = s == "dynamic" ? RopeScaling::Dynamic : RopeScaling::None;
      }
      options.rope_factor = float(number_or(o, "ropeFactor", 0.0));
      if (options.rope_factor < 0) throw Error("ropeFactor must be positive");
      const Napi::Value weights = o.Get("weights");
      if (weights.IsString()) {
        const std::string w = weights.As<Napi::String>().Utf8Value();
        if (w == "mapped") options.weights = LoadOptions::Weights::Mapped;
        else if (w == "ram") options.weights = LoadOptions::Weights::Ram;
        else if (w != "auto") throw Error("weights must be \"auto\", \"mapped\" or \"ram\", not \"" + w + "\"");
      } else if (!weights.IsUndefined()) {
        throw Error("weights must be a string: \"auto\", \"mapped\" or \"ram\"");
      }
      auto_weights = !weights.IsString() || weights.As<Napi::String>().Utf8Value() == "auto";
    }
    if (auto_weights) options.weights = auto_weights_for(device);
    auto progress = std::make_shared<Napi::FunctionReference>();
    if (info[2].IsFunction()) *progress = Napi::Persistent(info[2].As<Napi::Function>());
    return run_async<std::shared_ptr<ModelState>>(env, [path, options, threads, device, progress, auto_weights](const Post& post) {
      auto state = std::make_shared<ModelState>();
      auto report = [&](double fraction) {
        post([progress, fraction](Napi::Env env) {
          if (!progress->IsEmpty()) progress->Call({Napi::Number::New(env, fraction)});
        });
      };
      state->model = load_model(path, options, report);
      state->tokenizer = std::make_unique<Tokenizer>(state->model->vocab);
      state->backend = create_backend(*state->model, device, threads, &state->device);
      // "auto" mapped the weights because a GPU is present (auto_weights_for), but the model ended
      // up on the CPU (a weight type the GPU lacks, too big for it): the CPU streams every weight
      // per token and wants them in RAM (5x faster decode than from a mapping, bench/RESULTS.md).
      // A mapped load is cheap (~1 s), so load again as the CPU would have; the description stays.
      if (auto_weights && options.weights == LoadOptions::Weights::Mapped && state->backend->name() == "cpu" &&
          !state->model->weights_in_ram) {
        LoadOptions ram = options;
        ram.weights = LoadOptions::Weights::RamIfFits;
        state->backend.reset();
        state->model.reset();
        state->model = load_model(path, ram, report);
        state->backend = create_cpu_backend(*state->model, threads);
      }
      return state;
    }, [progress](Napi::Env env, std::shared_ptr<ModelState>& state) -> Napi::Value {
      progress->Reset();
      Napi::Object obj = ModelWrap::constructor.New({});
      ModelWrap::Unwrap(obj)->attach(state);
      return obj;
    });
  });
}

Napi::Value PhysicalCores(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::physical_core_count());
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  SessionWrap::Init(env);
  ModelWrap::Init(env);
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
  exports.Set("physicalCores", Napi::Function::New(env, PhysicalCores));
}

}  // namespace ilm::addon
