#pragma once
// Runs engine work on its own thread (never the event loop, never libuv's small pool, since a
// generation may take minutes) and settles a Promise on the JS thread. The work can post tasks
// to the JS thread (progress, streamed text); they run in order, before the settlement.
#include <napi.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace ilm::addon {

using JsTask = std::function<void(Napi::Env)>;
using Post = std::function<void(JsTask)>;

template <typename Result>
Napi::Promise run_async(Napi::Env env, std::function<Result(const Post&)> work,
                        std::function<Napi::Value(Napi::Env, Result&)> to_js) {
  struct Job {
    Napi::Promise::Deferred deferred;
    Napi::ThreadSafeFunction tsfn;
    std::function<Result(const Post&)> work;
    std::function<Napi::Value(Napi::Env, Result&)> to_js;
    std::optional<Result> result;
    std::string error;
  };
  auto* job = new Job{Napi::Promise::Deferred::New(env),
                      Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                    "internlm-engine", 0, 1),
                      std::move(work), std::move(to_js), std::nullopt, std::string()};
  Napi::Promise promise = job->deferred.Promise();

  std::thread([job] {
    // A copy of the handle: the job may be freed by the final task while BlockingCall returns.
    Napi::ThreadSafeFunction tsfn = job->tsfn;
    auto post = [tsfn](JsTask task) mutable {
      auto* heap = new JsTask(std::move(task));
      const napi_status status = tsfn.BlockingCall(heap, [](Napi::Env env, Napi::Function, JsTask* t) {
        std::unique_ptr<JsTask> owned(t);
        try {
          (*owned)(env);
        } catch (const Napi::Error& e) {
          // A throwing JS callback must not stop the engine: report it as Node reports errors in callbacks.
          napi_fatal_exception(env, e.Value());
        }
      });
      if (status != napi_ok) delete heap;
    };
    try {
      job->result.emplace(job->work(post));
    } catch (const std::exception& e) {
      job->error = e.what();
    }
    // The final task owns the job: it settles the promise and frees everything on the JS thread.
    post([job](Napi::Env env) {
      std::unique_ptr<Job> owned(job);
      if (!owned->result) {
        owned->deferred.Reject(Napi::Error::New(env, owned->error).Value());
        return;
      }
      try {
        owned->deferred.Resolve(owned->to_js(env, *owned->result));
      } catch (const Napi::Error& e) {
        owned->deferred.Reject(e.Value());
      } catch (const std::exception& e) {
        owned->deferred.Reject(Napi::Error::New(env, e.what()).Value());
      }
    });
    tsfn.Release();
  }).detach();
  return promise;
}

}  // namespace ilm::addon
