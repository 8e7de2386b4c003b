// loadTokenizer(path) -> {encode(text, special), decode(ids), decodeStream(ids), vocabSize()}.
// Each function holds its own reference to the tokenizer, so a method kept after the object is
// dropped stays valid.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace ilm::addon {
namespace {

std::string string_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) throw Error(std::string(what) + " must be a string");
  // N-API hands over well-formed UTF-8: lone surrogates arrive as U+FFFD.
  return info[index].As<Napi::String>().Utf8Value();
}

std::vector<int32_t> ids_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsArray()) throw Error("ids must be an array of token ids");
  const auto array = info[index].As<Napi::Array>();
  const uint32_t n = array.Length();
  std::vector<int32_t> ids(n);
  for (uint32_t i = 0; i < n; ++i) {
    const Napi::Value v = array.Get(i);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= INT32_MIN && d <= INT32_MAX) || d != std::floor(d)) {
      throw Error("ids[" + std::to_string(i) + "] is not an integer token id");
    }
    ids[i] = int32_t(d);
  }
  return ids;
}

Napi::Value load_tokenizer(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string path = string_arg(info, 0, "tokenizer path");
    const auto tokenizer = std::make_shared<const Tokenizer>(load_vocab(path));

    Napi::Object object = Napi::Object::New(env);
    object.Set("encode", Napi::Function::New(env, [tokenizer](const Napi::CallbackInfo& call) -> Napi::Value {
      return guard(call.Env(), [&]() -> Napi::Value {
        const std::string text = string_arg(call, 0, "text");
        const bool special = call.Length() > 1 && call[1].ToBoolean().Value();
        const std::vector<int32_t> ids = tokenizer->encode(text, special);
        Napi::Array out = Napi::Array::New(call.Env(), ids.size());
        for (size_t i = 0; i < ids.size(); ++i) out.Set(uint32_t(i), Napi::Number::New(call.Env(), ids[i]));
        return out;
      });
    }, "encode"));
    object.Set("decode", Napi::Function::New(env, [tokenizer](const Napi::CallbackInfo& call) -> Napi::Value {
      return guard(call.Env(), [&]() -> Napi::Value {
        // Invalid UTF-8 (a character cut between tokens) becomes U+FFFD in the JS string.
        return Napi::String::New(call.Env(), tokenizer->decode(ids_arg(call, 0)));
      });
    }, "decode"));
    // What a streaming consumer sees: the text released after each id, then flush()'s rest.
    object.Set("decodeStream", Napi::Function::New(env, [tokenizer](const Napi::CallbackInfo& call) -> Napi::Value {
      return guard(call.Env(), [&]() -> Napi::Value {
        const std::vector<int32_t> ids = ids_arg(call, 0);
        StreamDecoder decoder(*tokenizer);
        Napi::Array out = Napi::Array::New(call.Env(), ids.size() + 1);
        for (size_t i = 0; i < ids.size(); ++i) out.Set(uint32_t(i), decoder.push(ids[i]));
        out.Set(uint32_t(ids.size()), decoder.flush());
        return out;
      });
    }, "decodeStream"));
    object.Set("vocabSize", Napi::Function::New(env, [tokenizer](const Napi::CallbackInfo& call) -> Napi::Value {
      return Napi::Number::New(call.Env(), tokenizer->n_vocab());
    }, "vocabSize"));
    return object;
  });
}

}  // namespace

void register_tokenizer(Napi::Env env, Napi::Object exports) {
  exports.Set("loadTokenizer", Napi::Function::New(env, load_tokenizer, "loadTokenizer"));
}

}  // namespace ilm::addon
