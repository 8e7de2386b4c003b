// quantizeModel(input, output, type, {threads, leaveOutputTensor}, onProgress) -> Promise<{type, bytes, tensors, types}>:
// the native side of `internlm quantize` (quant/quantize_model.h), run off the event loop.
#include <memory>

#include "addon/async.h"
#include "addon/bindings.h"
#include "quant/quantize_model.h"
#include "util/error.h"

namespace ilm::addon {
namespace {

Napi::Value QuantizeModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!info[0].IsString() || !info[1].IsString() || !info[2].IsString())
      throw Error("quantizeModel needs an input path, an output path and a type name");
    quant::QuantizeOptions options;
    options.input = info[0].As<Napi::String>().Utf8Value();
    options.output = info[1].As<Napi::String>().Utf8Value();
    options.type = info[2].As<Napi::String>().Utf8Value();
    if (info[3].IsObject()) {
      const Napi::Object o = info[3].As<Napi::Object>();
      const Napi::Value threads = o.Get("threads");
      if (threads.IsNumber()) options.threads = threads.As<Napi::Number>().Int32Value();
      if (options.threads < 0 || options.threads > 1024) throw Error("threads must be between 1 and 1024");
      options.leave_output = o.Get("leaveOutputTensor").ToBoolean();
    }
    auto progress = std::make_shared<Napi::FunctionReference>();
    if (info[4].IsFunction()) *progress = Napi::Persistent(info[4].As<Napi::Function>());
    return run_async<quant::QuantizeResult>(env, [options, progress](const Post& post) {
      return quant::quantize_model(options, [&](double fraction) {
        post([progress, fraction](Napi::Env env) {
          if (!progress->IsEmpty()) progress->Call({Napi::Number::New(env, fraction)});
        });
      });
    }, [progress](Napi::Env env, quant::QuantizeResult& r) -> Napi::Value {
      progress->Reset();
      Napi::Object out = Napi::Object::New(env);
      out.Set("type", r.type);
      out.Set("bytes", Napi::Number::New(env, double(r.bytes)));
      out.Set("tensors", r.tensors);
      Napi::Object types = Napi::Object::New(env);
      for (const auto& [name, count] : r.types) types.Set(name, count);
      out.Set("types", types);
      return out;
    });
  });
}

}  // namespace

void register_quantize(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeModel", Napi::Function::New(env, QuantizeModel));
}

}  // namespace ilm::addon
