// SentencePiece BPE encoding with the same merge order as Google's bpe_model.cc (highest score
// first, ties to the leftmost pair, UNUSED pieces resegmented at the end), special-token
// splitting for trusted text, and byte-exact decoding.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <limits>
#include <unordered_map>
#include <utility>

#include "util/error.h"

namespace ilm {
namespace {

constexpr std::string_view kSpaceSymbol = "\xe2\x96\x81";  // U+2581, SentencePiece's escaped space
constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

enum class Utf8 { Complete, Truncated, Invalid };
struct Utf8Step {
  Utf8 kind;
  size_t len;  // Complete: the sequence; Truncated: the bytes present; Invalid: the maximal subpart
};

// Classifies the UTF-8 sequence at s[0..n) (n > 0) per RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF. Invalid lengths follow the "maximal subpart" rule
// that TextDecoder and V8 use, so each replaced run becomes exactly one U+FFFD.
Utf8Step utf8_step(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  if (c < 0x80) return {Utf8::Complete, 1};
  // Sequence length and the allowed range of the second byte, per lead byte (Unicode Table 3-7).
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0) lo = 0x90;  // no overlong forms
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return {Utf8::Invalid, 1};
  }
  for (size_t i = 1; i < need; ++i) {
    if (i == n) return {Utf8::Truncated, i};
    const unsigned char b = s[i];
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) return {Utf8::Invalid, i};
  }
  return {Utf8::Complete, need};
}

// Moves the decodable prefix of `pending` into the result. Invalid bytes become U+FFFD; a
// truncated sequence at the end stays pending unless `final`.
std::string release_utf8(std::string& pending, bool final) {
  std::string out;
  const auto* s = reinterpret_cast<const unsigned char*>(pending.data());
  const size_t n = pending.size();
  size_t i = 0;
  while (i < n) {
    const Utf8Step step = utf8_step(s + i, n - i);
    if (step.kind == Utf8::Truncated && !final) break;
    if (step.kind == Utf8::Complete) {
      out.append(pending, i, step.len);
    } else {
      out += kReplacement;
    }
    i += step.len;
  }
  pending.erase(0, i);
  return out;
}

void check_id(int32_t id, int32_t n_vocab) {
  if (id < 0 || id >= n_vocab) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(n_vocab - 1) + ")");
  }
}

// "<0xAB>" -> 0xAB, or -1.
int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

std::string unescape_spaces(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t i = 0;
  for (size_t at; (at = piece.find(kSpaceSymbol, i)) != std::string_view::npos; i = at + kSpaceSymbol.size()) {
    out.append(piece.substr(i, at - i));
    out += ' ';
  }
  out.append(piece.substr(i));
  return out;
}

// Longest-match lookup over a small set of literal strings (user-defined or special pieces).
class PrefixTrie {
 public:
  void insert(std::string_view key, int32_t id) {
    uint32_t node = 0;
    for (unsigned char b : key) {
      const auto [it, added] = edges_.try_emplace(edge(node, b), uint32_t(ids_.size()));
      if (added) ids_.push_back(-1);
      node = it->second;
    }
    if (ids_[node] < 0) ids_[node] = id;
    first_[static_cast<unsigned char>(key[0])] = true;
  }

  // {length, id} of the longest key that starts `text`; length 0 when none does.
  std::pair<size_t, int32_t> match(std::string_view text) const {
    std::pair<size_t, int32_t> best{0, -1};
    if (text.empty() || !first_[static_cast<unsigned char>(text[0])]) return best;
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto it = edges_.find(edge(node, static_cast<unsigned char>(text[i])));
      if (it == edges_.end()) break;
      node = it->second;
      if (ids_[node] >= 0) best = {i + 1, ids_[node]};
    }
    return best;
  }

 private:
  static uint64_t edge(uint32_t node, unsigned char b) { return uint64_t(node) << 8 | b; }

  std::unordered_map<uint64_t, uint32_t> edges_;
  std::vector<int32_t> ids_{-1};  // piece id ending at each node; node 0 is the root
  std::array<bool, 256> first_{};  // cheap rejection for the common case
};

uint32_t decode_utf8(const unsigned char* s, size_t len) {
  static constexpr unsigned char kLeadMask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
  uint32_t cp = s[0] & kLeadMask[len];
  for (size_t i = 1; i < len; ++i) cp = cp << 6 | (s[i] & 0x3f);
  return cp;
}

// Which characters occur next to each other inside some piece, as a Bloom-style bitset: a false
// "may contain" is exact, a true one may be a collision (which only costs a missed chunk cut).
class CharPairFilter {
 public:
  CharPairFilter() : bits_(size_t(1) << (kBits - 6)) {}

  void add_piece(std::string_view piece) {
    const auto* s = reinterpret_cast<const unsigned char*>(piece.data());
    uint32_t prev = 0;
    for (size_t i = 0; i < piece.size();) {
      const Utf8Step step = utf8_step(s + i, piece.size() - i);
      // Invalid bytes get values no character has; they never pair with a real symbol.
      const uint32_t ch = step.kind == Utf8::Complete ? decode_utf8(s + i, step.len) : 0x110000u + s[i];
      const size_t len = step.kind == Utf8::Complete ? step.len : 1;
      if (i > 0) set(prev, ch);
      prev = ch;
      i += len;
    }
  }

  bool may_contain(uint32_t a, uint32_t b) const {
    const uint64_t h = slot(a, b);
    return bits_[h >> 6] >> (h & 63) & 1;
  }

 private:
  static constexpr int kBits = 22;  // 4M bits, 512 KiB
  static uint64_t slot(uint32_t a, uint32_t b) {
    return ((uint64_t(a) << 21 | b) * 0x9e3779b97f4a7c15ull) >> (64 - kBits);
  }
  void set(uint32_t a, uint32_t b) {
    const uint64_t h = slot(a, b);
    bits_[h >> 6] |= uint64_t(1) << (h & 63);
  }

  std::vector<uint64_t> bits_;
};

}  // namespace

struct Tokenizer::Impl {
  struct Symbol {
    uint32_t begin;
    uint32_t len;  // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
    int32_t id;    // piece id once merged; -1 for an initial symbol (looked up at the end)
    bool frozen;   // user-defined pieces and invalid bytes never merge
  };
  // A pair of adjacent symbols whose concatenation is a piece.
  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    int32_t id;
    uint32_t len;  // bytes of the merged piece; detects pairs made stale by other merges

    // Heap order of bpe_model.cc: highest score first, then the leftmost pair.
    struct Lower {
      bool operator()(const Candidate& a, const Candidate& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
      }
    };
  };
  // Scratch space of one encode call, reused across its chunks.
  struct Workspace {
    std::vector<Symbol> symbols;  // the current chunk, as a doubly-linked list
    std::vector<Candidate> agenda;
    // Unused piece id -> byte length of its left part, as the last pair that formed it was
    // split (SentencePiece's rev_merge keeps the last one too).
    std::unordered_map<int32_t, uint32_t> unused_split;
    std::vector<std::pair<uint32_t, uint32_t>> pending;  // (begin, len) still to resegment
    bool prev_unknown = false;
  };

  explicit Impl(Vocab v);
  std::string normalize(std::string_view text) const;
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
  void merge_chunk(const std::string& norm, Workspace& ws, std::vector<int32_t>& out) const;

  Vocab vocab;
  // SentencePiece keeps two tables: pieces BPE may produce from text (normal, user-defined,
  // unused) and reserved ones (control, unknown, byte) that text never turns into.
  std::unordered_map<std::string_view, int32_t> mergeable;
  std::unordered_map<std::string_view, int32_t> reserved;
  PrefixTrie user_defined;  // matched greedily as unbreakable symbols
  PrefixTrie specials;      // control/unknown texts, split out only for trusted text
  std::array<int32_t, 256> byte_ids{};
  std::vector<std::string> surfaces;  // token_bytes of every id
  size_t max_piece_bytes = 0;         // longer concatenations cannot be pieces
  CharPairFilter char_pairs;          // adjacent characters inside mergeable pieces
  bool has_unused = false;
};

Tokenizer::Impl::Impl(Vocab v) : vocab(std::move(v)) {
  const size_t n = vocab.pieces.size();
  if (n == 0) throw Error("tokenizer vocabulary is empty");
  if (vocab.scores.size() != n || vocab.types.size() != n) {
    throw Error("tokenizer vocabulary is inconsistent: " + std::to_string(n) + " pieces, " +
                std::to_string(vocab.scores.size()) + " scores, " + std::to_string(vocab.types.size()) +
                " types");
  }
  if (vocab.unk_id < 0 || size_t(vocab.unk_id) >= n) {
    throw Error("tokenizer unknown-token id " + std::to_string(vocab.unk_id) + " is outside the vocabulary of " +
                std::to_string(n) + " pieces");
  }

  byte_ids.fill(vocab.unk_id);
  surfaces.resize(n);
  mergeable.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view piece = vocab.pieces[i];
    const int32_t id = int32_t(i);
    if (piece.empty()) continue;
    switch (vocab.types[i]) {
      case PieceType::Control:
      case PieceType::Unknown:
        reserved.emplace(piece, id);
        specials.insert(piece, id);
        break;
      case PieceType::Byte: {
        reserved.emplace(piece, id);
        const int byte = parse_byte_piece(piece);
        if (byte >= 0) {
          if (byte_ids[byte] == vocab.unk_id) byte_ids[byte] = id;
          surfaces[i] = std::string(1, char(byte));
        }
        break;
      }
      case PieceType::Unused:
        has_unused = true;
        mergeable.emplace(piece, id);
        max_piece_bytes = std::max(max_piece_bytes, piece.size());
        char_pairs.add_piece(piece);
        break;
      case PieceType::UserDefined:
        user_defined.insert(piece, id);
        [[fallthrough]];
      default:  // Normal, and GGUF's "undefined" type
        mergeable.emplace(piece, id);
        max_piece_bytes = std::max(max_piece_bytes, piece.size());
        char_pairs.add_piece(piece);
        surfaces[i] = unescape_spaces(piece);
    }
  }
}

// The normalizer of an identity-rule model: only whitespace handling, with SentencePiece's
// flags. Bytes that are not UTF-8 pass through and end up as byte tokens, so decoding gives
// them back (SentencePiece would turn each into U+FFFD; text from JS is always valid UTF-8).
std::string Tokenizer::Impl::normalize(std::string_view text) const {
  const bool squeeze = vocab.remove_extra_whitespaces;
  if (squeeze) {
    const size_t first = text.find_first_not_of(' ');
    if (first == std::string_view::npos) return {};
    text.remove_prefix(first);
  }
  const std::string_view space = vocab.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
  std::string out;
  out.reserve(text.size() + text.size() / 2 + space.size());
  if (vocab.add_dummy_prefix && !text.empty()) out += space;
  bool prev_space = false;
  for (char c : text) {
    if (c != ' ') {
      out += c;
      prev_space = false;
    } else if (!(squeeze && prev_space)) {
      out += space;
      prev_space = true;
    }
  }
  if (squeeze) {
    while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space) {
      out.resize(out.size() - space.size());
    }
  }
  return out;
}

void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  const std::string norm = normalize(text);
  if (norm.empty()) return;
  if (norm.size() >= std::numeric_limits<uint32_t>::max()) throw Error("text is too long to tokenize (4 GB or more)");

  // Cuts the text into chunks that no merge can span and runs BPE on each: the result is the
  // same as one BPE pass over the whole text, but the working set stays in cache. A boundary is
  // safe next to a frozen symbol, or between two characters that are adjacent in no piece.
  // UNUSED pieces are resegmented with splits recorded over the whole text, so a vocabulary
  // with them gets one pass.
  Workspace ws;
  const auto* bytes = reinterpret_cast<const unsigned char*>(norm.data());
  uint32_t prev_char = 0;
  bool prev_frozen = true;
  for (size_t pos = 0; pos < norm.size();) {
    size_t len = user_defined.match(std::string_view(norm).substr(pos)).first;
    bool frozen = len > 0;
    uint32_t ch = 0;
    if (!frozen) {
      const Utf8Step step = utf8_step(bytes + pos, norm.size() - pos);
      frozen = step.kind != Utf8::Complete;
      len = frozen ? 1 : step.len;
      if (!frozen) ch = decode_utf8(bytes + pos, len);
    }
    if (!ws.symbols.empty() && !has_unused && (prev_frozen || frozen || !char_pairs.may_contain(prev_char, ch))) {
      merge_chunk(norm, ws, out);
    }
    const int32_t index = int32_t(ws.symbols.size());
    ws.symbols.push_back({uint32_t(pos), uint32_t(len), index - 1, index + 1, -1, frozen});
    prev_char = ch;
    prev_frozen = frozen;
    pos += len;
  }
  merge_chunk(norm, ws, out);
}

void Tokenizer::Impl::merge_chunk(const std::string& norm, Workspace& ws, std::vector<int32_t>& out) const {
  std::vector<Symbol>& symbols = ws.symbols;
  std::vector<Candidate>& agenda = ws.agenda;
  symbols.back().next = -1;

  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const uint32_t len = symbols[left].len + symbols[right].len;
    if (len > max_piece_bytes) return;
    const auto it = mergeable.find(std::string_view(norm.data() + symbols[left].begin, len));
    if (it == mergeable.end()) return;
    const int32_t id = it->second;
    agenda.push_back({vocab.scores[id], left, right, id, len});
    std::push_heap(agenda.begin(), agenda.end(), Candidate::Lower{});
    if (vocab.types[id] == PieceType::Unused) ws.unused_split[id] = symbols[left].len;
  };

  for (size_t i = 1; i < symbols.size(); ++i) consider(int32_t(i - 1), int32_t(i));

  while (!agenda.empty()) {
    std::pop_heap(agenda.begin(), agenda.end(), Candidate::Lower{});
    const Candidate top = agenda.back();
    agenda.pop_back();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != top.len) continue;
    left.len = top.len;
    left.id = top.id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.len = 0;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  const auto emit = [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      out.push_back(id);
      ws.prev_unknown = false;
    } else if (vocab.byte_fallback) {
      for (unsigned char b : piece) out.push_back(byte_ids[b]);
    } else if (!ws.prev_unknown) {  // a run of unknown characters is one <unk>, as in SentencePiece
      out.push_back(vocab.unk_id);
      ws.prev_unknown = true;
    }
  };

  auto& pending = ws.pending;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& symbol = symbols[i];
    if (symbol.id >= 0 && vocab.types[symbol.id] != PieceType::Unused) {
      emit({}, symbol.id);
      continue;
    }
    pending.emplace_back(symbol.begin, symbol.len);
    while (!pending.empty()) {
      const auto [begin, len] = pending.back();
      pending.pop_back();
      const std::string_view piece(norm.data() + begin, len);
      const auto it = mergeable.find(piece);
      const int32_t id = it == mergeable.end() ? -1 : it->second;
      if (id >= 0 && vocab.types[id] == PieceType::Unused) {
        if (const auto split = ws.unused_split.find(id); split != ws.unused_split.end()) {
          pending.emplace_back(begin + split->second, len - split->second);  // right, popped second
          pending.emplace_back(begin, split->second);
          continue;
        }
      }
      emit(piece, id);
    }
  }
  symbols.clear();
}

Tokenizer::Tokenizer(Vocab vocab) : impl_(std::make_unique<Impl>(std::move(vocab))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (!allow_special) {
    impl_->encode_segment(text, out);
    return out;
  }
  size_t segment = 0;
  for (size_t i = 0; i < text.size();) {
    const auto [len, id] = impl_->specials.match(text.substr(i));
    if (len == 0) {
      ++i;
      continue;
    }
    impl_->encode_segment(text.substr(segment, i - segment), out);
    out.push_back(id);
    i += len;
    segment = i;
  }
  impl_->encode_segment(text.substr(segment), out);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  check_id(id, n_vocab());
  return impl_->surfaces[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    check_id(id, n_vocab());
    out += impl_->surfaces[size_t(id)];
  }
  return out;
}

int32_t Tokenizer::piece_to_id(std::string_view piece) const {
  if (const auto it = impl_->reserved.find(piece); it != impl_->reserved.end()) return it->second;
  if (const auto it = impl_->mergeable.find(piece); it != impl_->mergeable.end()) return it->second;
  return -1;
}

const Vocab& Tokenizer::vocab() const { return impl_->vocab; }
int32_t Tokenizer::n_vocab() const { return impl_->vocab.size(); }

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id);
  return release_utf8(pending_, false);
}

std::string StreamDecoder::flush() { return release_utf8(pending_, true); }

}  // namespace ilm
