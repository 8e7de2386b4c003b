// Reads a SentencePiece ModelProto (tokenizer.model) with a minimal protobuf wire-format reader,
// so the engine needs no protobuf dependency. Field numbers and defaults follow
// sentencepiece_model.proto; every malformed input ends in an ilm::Error, never a crash.
#include <cstring>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace ilm {
namespace {

// Wire types of the protobuf encoding.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// SentencePiece limits pieces to this many bytes; a longer one means a corrupt file.
constexpr size_t kMaxPieceBytes = 8000;
// InternLM2 has 92,544 pieces; anything near this bound is not a real tokenizer.
constexpr size_t kMaxPieces = size_t(1) << 22;

[[noreturn]] void fail(const std::string& what) {
  throw Error("tokenizer.model is not a valid SentencePiece model: " + what +
              " (the file may be truncated or not a tokenizer.model; re-download it)");
}

class WireReader {
 public:
  WireReader(const uint8_t* data, size_t size, const char* message)
      : p_(data), end_(data + size), message_(message) {}

  bool done() const { return p_ == end_; }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) fail(std::string("truncated varint in ") + message_);
      const uint8_t byte = *p_++;
      value |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail(std::string("varint longer than 10 bytes in ") + message_);
  }

  // Returns {field number, wire type}.
  std::pair<uint32_t, uint32_t> tag() {
    const uint64_t t = varint();
    const uint64_t field = t >> 3;
    if (field == 0 || field > 0x1fffffff) fail("invalid field number in " + std::string(message_));
    return {uint32_t(field), uint32_t(t & 7)};
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > uint64_t(end_ - p_)) {
      fail("length " + std::to_string(n) + " runs past the end of " + message_ + " (" +
           std::to_string(end_ - p_) + " bytes left)");
    }
    std::string_view out(reinterpret_cast<const char*>(p_), size_t(n));
    p_ += n;
    return out;
  }

  float fixed32_float() {
    if (end_ - p_ < 4) fail(std::string("truncated fixed32 in ") + message_);
    // The wire format is little-endian, like every host this engine targets.
    float f;
    std::memcpy(&f, p_, 4);
    p_ += 4;
    return f;
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case kVarint: varint(); return;
      case kFixed64: advance(8); return;
      case kLengthDelimited: bytes(); return;
      case kFixed32: advance(4); return;
      default:
        fail("unsupported wire type " + std::to_string(wire_type) + " in " + message_);
    }
  }

  void expect(uint32_t wire_type, uint32_t expected, const char* field) {
    if (wire_type != expected) {
      fail(std::string("field ") + field + " of " + message_ + " has wire type " +
           std::to_string(wire_type) + ", expected " + std::to_string(expected));
    }
  }

 private:
  void advance(size_t n) {
    if (size_t(end_ - p_) < n) fail(std::string("truncated field in ") + message_);
    p_ += n;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const char* message_;
};

WireReader sub_reader(std::string_view bytes, const char* message) {
  return WireReader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), message);
}

void read_piece(std::string_view message, Vocab& vocab) {
  WireReader r = sub_reader(message, "a SentencePiece entry");
  std::string_view piece;
  float score = 0.0f;
  uint64_t type = uint64_t(PieceType::Normal);  // proto default
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    switch (field) {
      case 1: r.expect(wire, kLengthDelimited, "piece"); piece = r.bytes(); break;
      case 2: r.expect(wire, kFixed32, "score"); score = r.fixed32_float(); break;
      case 3: r.expect(wire, kVarint, "type"); type = r.varint(); break;
      default: r.skip(wire);
    }
  }
  const std::string index = std::to_string(vocab.pieces.size());
  if (piece.empty()) fail("piece " + index + " is empty");
  if (piece.size() > kMaxPieceBytes) fail("piece " + index + " is longer than 8000 bytes");
  if (type < uint64_t(PieceType::Normal) || type > uint64_t(PieceType::Byte)) {
    fail("piece " + index + " has unknown type " + std::to_string(type));
  }
  vocab.pieces.emplace_back(piece);
  vocab.scores.push_back(score);
  vocab.types.push_back(PieceType(type));
}

struct TrainerSpec {
  uint64_t model_type = 1;  // UNIGRAM is the proto default
  bool byte_fallback = false;
  int64_t bos_id = 1;
  int64_t eos_id = 2;
};

// Proto int32 fields arrive as 64-bit varints; negative values are sign-extended.
int64_t as_int32(uint64_t v) { return int64_t(int32_t(uint32_t(v))); }

// Updates `spec`: a message field that occurs twice is merged, as protobuf does.
void read_trainer_spec(std::string_view message, TrainerSpec& spec) {
  WireReader r = sub_reader(message, "trainer_spec");
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    switch (field) {
      case 3: r.expect(wire, kVarint, "model_type"); spec.model_type = r.varint(); break;
      case 35: r.expect(wire, kVarint, "byte_fallback"); spec.byte_fallback = r.varint() != 0; break;
      case 41: r.expect(wire, kVarint, "bos_id"); spec.bos_id = as_int32(r.varint()); break;
      case 42: r.expect(wire, kVarint, "eos_id"); spec.eos_id = as_int32(r.varint()); break;
      default: r.skip(wire);
    }
  }
}

struct NormalizerSpec {
  std::string name;
  bool has_charsmap = false;
  bool add_dummy_prefix = true;  // proto defaults
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

void read_normalizer_spec(std::string_view message, NormalizerSpec& spec) {
  WireReader r = sub_reader(message, "normalizer_spec");
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    switch (field) {
      case 1: r.expect(wire, kLengthDelimited, "name"); spec.name = std::string(r.bytes()); break;
      case 2:
        r.expect(wire, kLengthDelimited, "precompiled_charsmap");
        spec.has_charsmap = !r.bytes().empty();
        break;
      case 3: r.expect(wire, kVarint, "add_dummy_prefix"); spec.add_dummy_prefix = r.varint() != 0; break;
      case 4:
        r.expect(wire, kVarint, "remove_extra_whitespaces");
        spec.remove_extra_whitespaces = r.varint() != 0;
        break;
      case 5: r.expect(wire, kVarint, "escape_whitespaces"); spec.escape_whitespaces = r.varint() != 0; break;
      default: r.skip(wire);
    }
  }
}

const char* model_type_name(uint64_t type) {
  switch (type) {
    case 1: return "Unigram";
    case 3: return "word";
    case 4: return "char";
    default: return "unknown-type";
  }
}

}  // namespace

Vocab vocab_from_sentencepiece(const uint8_t* data, size_t size) {
  if (data == nullptr || size == 0) throw Error("tokenizer.model is empty (0 bytes); re-download it");

  Vocab vocab;
  TrainerSpec trainer;
  NormalizerSpec normalizer;
  WireReader r(data, size, "ModelProto");
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, kLengthDelimited, "pieces");
        if (vocab.pieces.size() >= kMaxPieces) fail("more than 4194304 pieces");
        read_piece(r.bytes(), vocab);
        break;
      case 2: r.expect(wire, kLengthDelimited, "trainer_spec"); read_trainer_spec(r.bytes(), trainer); break;
      case 3:
        r.expect(wire, kLengthDelimited, "normalizer_spec");
        read_normalizer_spec(r.bytes(), normalizer);
        break;
      default: r.skip(wire);
    }
  }

  if (vocab.pieces.empty()) fail("it contains no pieces");
  if (trainer.model_type != 2) {
    throw Error(std::string("tokenizer.model is a SentencePiece ") + model_type_name(trainer.model_type) +
                " model; only BPE models (as used by InternLM2) are supported");
  }
  // Rule-based normalizers (nmt_nfkc, ...) ship a compiled character map we do not implement;
  // ignoring it would silently produce ids the model was not trained on.
  if (normalizer.has_charsmap) {
    throw Error("tokenizer.model uses the SentencePiece normalizer '" + normalizer.name +
                "'; only the identity normalizer (as used by InternLM2) is supported");
  }

  int32_t unk = -1;
  int n_bytes = 0;
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    if (vocab.types[i] == PieceType::Unknown) {
      if (unk >= 0) fail("it defines more than one unknown piece");
      unk = int32_t(i);
    }
    if (vocab.types[i] == PieceType::Byte) ++n_bytes;
  }
  if (unk < 0) fail("it has no unknown (<unk>) piece");
  if (trainer.byte_fallback && n_bytes != 256) {
    fail("byte_fallback is on but it has " + std::to_string(n_bytes) + " byte pieces instead of 256");
  }

  const auto in_range = [&](int64_t id) { return id >= 0 && id < int64_t(vocab.pieces.size()); };
  vocab.unk_id = unk;
  vocab.bos_id = in_range(trainer.bos_id) ? int32_t(trainer.bos_id) : -1;
  vocab.eos_id = in_range(trainer.eos_id) ? int32_t(trainer.eos_id) : -1;
  vocab.add_bos = vocab.bos_id >= 0;
  vocab.add_dummy_prefix = normalizer.add_dummy_prefix;
  vocab.remove_extra_whitespaces = normalizer.remove_extra_whitespaces;
  vocab.escape_whitespaces = normalizer.escape_whitespaces;
  vocab.byte_fallback = trainer.byte_fallback;
  return vocab;
}

}  // namespace ilm
