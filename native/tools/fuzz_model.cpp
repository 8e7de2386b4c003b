// Mutation fuzzer for the model loaders: corrupts a valid GGUF file and a valid Hugging Face
// checkpoint (safetensors header, config.json, index) in seeded ways (byte flips, truncation,
// corrupted length/offset fields and numbers) and loads each result. Every outcome must be a
// successful load or an ilm::Error; any other exception ends the run with exit code 1, and a crash
// or hang shows as a signal or timeout to the caller (test/fuzz.test.mjs).
//
//   fuzz_model --gguf FILE --hf DIR --work DIR [--iterations N] [--seed S]
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/model.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return below(100) < size_t(percent); }

  // Values that break length and offset arithmetic: zero, one, sign bits, all ones, around the
  // file size.
  uint64_t interesting(size_t file_size) {
    const uint64_t picks[] = {0, 1, 2, 7, 8, 31, 32, 255, 0x7fffffffull, 0x80000000ull, 0xffffffffull,
                              0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                              0xffffffffffffffffull, file_size, file_size - 1, file_size + 1,
                              file_size / 2, uint64_t(file_size) * 2};
    if (chance(20)) return rng_();
    return picks[below(sizeof(picks) / sizeof(picks[0]))];
  }

  // A position in the first HEADER bytes, where every count, length and offset lives; half of
  // the picks go to its first and last 2 KiB (fixed fields and tensor infos), not the token text.
  size_t header_pos(size_t header) {
    const size_t edge = std::min<size_t>(header, 2048);
    switch (below(4)) {
      case 0: return below(edge);
      case 1: return header - edge + below(edge);
      default: return below(header);
    }
  }

  std::string binary(Bytes& data, size_t header) {
    header = std::min(std::max<size_t>(header, 16), data.size());
    switch (below(4)) {
      case 0: {
        const size_t n = 1 + below(8);
        for (size_t i = 0; i < n; i++) data[header_pos(header)] ^= uint8_t(1u << below(8));
        return "bit flips";
      }
      case 1: {
        const size_t n = 1 + below(4);
        for (size_t i = 0; i < n; i++) data[header_pos(header)] = uint8_t(rng_());
        return "random bytes";
      }
      case 2: {
        const size_t at = chance(80) ? header_pos(header) : below(data.size());
        data.resize(at);
        return "truncation";
      }
      default: {
        const uint64_t v = interesting(data.size());
        const size_t width = chance(50) ? 8 : 4;
        if (header < width) return "none";
        size_t at = std::min(header_pos(header), header - width);
        if (chance(60)) at &= ~size_t(3);  // fields are usually 4-byte aligned
        std::memcpy(&data[at], &v, width);
        return "length field";
      }
    }
  }

  // Mutations of JSON text: its numbers (shapes, offsets, sizes), structure and strings.
  std::string json(Bytes& data, size_t begin, size_t end) {
    end = std::min(end, data.size());
    if (begin >= end) return "none";
    const int kind = int(below(5));
    if (kind == 0) {
      std::vector<size_t> digits;
      for (size_t i = begin; i < end; i++)
        if (data[i] >= '0' && data[i] <= '9' && (i == begin || data[i - 1] < '0' || data[i - 1] > '9'))
          digits.push_back(i);
      if (digits.empty()) return "none";
      const size_t at = digits[below(digits.size())];
      size_t stop = at;
      while (stop < end && data[stop] >= '0' && data[stop] <= '9') stop++;
      static const char* const kNumbers[] = {"0", "1", "-1", "18446744073709551615", "18446744073709551616",
                                             "9223372036854775807", "99999999999999999999999", "1e308",
                                             "1.5", "4294967296", "65536"};
      std::string num = kNumbers[below(sizeof(kNumbers) / sizeof(kNumbers[0]))];
      if (chance(30)) num = std::to_string(rng_() % (data.size() * 2 + 1));
      data.erase(data.begin() + long(at), data.begin() + long(stop));
      data.insert(data.begin() + long(at), num.begin(), num.end());
      return "json number";
    }
    if (kind == 1) {
      static const char kSyntax[] = "{}[]\":,\\ 0";
      const size_t n = 1 + below(3);
      for (size_t i = 0; i < n; i++) data[begin + below(end - begin)] = uint8_t(kSyntax[below(sizeof(kSyntax) - 1)]);
      return "json syntax";
    }
    if (kind == 2) {
      data.erase(data.begin() + long(begin + below(end - begin)), data.begin() + long(end));
      return "json truncation";
    }
    if (kind == 3) {
      const size_t at = begin + below(end - begin);
      const size_t len = std::min(end - at, 1 + below(32));
      data.erase(data.begin() + long(at), data.begin() + long(at + len));
      return "json deletion";
    }
    data[begin + below(end - begin)] ^= uint8_t(1u << below(8));
    return "json bit flip";
  }

 private:
  std::mt19937_64 rng_;
};

struct Stats {
  size_t loaded = 0;
  size_t errors = 0;
  std::map<std::string, size_t> by_mutation;
  std::vector<std::string> samples;
};

// Loads PATH; true when the outcome is allowed (loaded or ilm::Error).
bool try_load(const std::string& path, const std::string& mutation, Stats& stats) {
  stats.by_mutation[mutation]++;
  try {
    auto model = ilm::load_model(path, ilm::LoadOptions{}, nullptr);
    stats.loaded++;
    return true;
  } catch (const ilm::Error& e) {
    stats.errors++;
    if (stats.samples.size() < 12 && stats.errors % 97 == 1) stats.samples.push_back(e.what());
    return true;
  } catch (const std::exception& e) {
    std::cerr << "FAIL: " << mutation << " of " << path << " threw a non-ilm::Error: " << e.what() << "\n";
    return false;
  } catch (...) {
    std::cerr << "FAIL: " << mutation << " of " << path << " threw a non-standard exception\n";
    return false;
  }
}

size_t u64_at(const Bytes& b, size_t at) {
  uint64_t v = 0;
  if (b.size() >= at + 8) std::memcpy(&v, &b[at], 8);
  return size_t(v);
}

// Bytes before the first tensor's data: the header, where every count, length and offset lives.
size_t gguf_header_span(const std::string& path) {
  ilm::GgufFile g(ilm::MappedFile::open(path));
  size_t end = g.file()->size();
  for (const auto& t : g.tensors()) end = std::min(end, size_t(t.data - g.file()->data()));
  return end;
}

}  // namespace

int main(int argc, char** argv) {
  std::string gguf, hf, work;
  uint64_t seed = 1;
  size_t iterations = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--gguf") gguf = v;
    else if (a == "--hf") hf = v;
    else if (a == "--work") work = v;
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--iterations") iterations = std::stoull(v);
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (gguf.empty() || hf.empty() || work.empty()) {
    std::cerr << "usage: fuzz_model --gguf FILE --hf DIR --work DIR [--iterations N] [--seed S]\n";
    return 2;
  }
  try {
    // The originals must load, or the fuzzer would only exercise the first check.
    ilm::load_model(gguf, ilm::LoadOptions{}, nullptr);
    ilm::load_model(hf, ilm::LoadOptions{}, nullptr);
  } catch (const std::exception& e) {
    std::cerr << "the unmutated inputs do not load: " << e.what() << "\n";
    return 2;
  }

  // The HF copy in WORK gets one file replaced per iteration and restored after it.
  const std::string hf_dir = work + "/hf";
  ::mkdir(hf_dir.c_str(), 0755);
  std::map<std::string, Bytes> hf_files;
  for (const char* name : {"config.json", "tokenizer.model", "tokenizer_config.json", "model.safetensors",
                           "model.safetensors.index.json", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors"}) {
    if (!exists(hf + "/" + name)) continue;
    hf_files[name] = read_file(hf + "/" + name);
    write_file(hf_dir + "/" + name, hf_files[name]);
  }
  std::vector<std::string> targets;
  for (const auto& [name, bytes] : hf_files)
    if (name != "tokenizer.model") targets.push_back(name);

  const Bytes gguf_bytes = read_file(gguf);
  const size_t gguf_header = gguf_header_span(gguf);
  const std::string gguf_path = work + "/fuzz.gguf";
  Mutator m(seed);
  Stats stats;
  const auto start = std::chrono::steady_clock::now();
  for (size_t it = 0; it < iterations; it++) {
    bool ok;
    if (m.chance(50)) {
      Bytes data = gguf_bytes;
      const std::string what = "gguf " + m.binary(data, gguf_header);
      write_file(gguf_path, data);
      ok = try_load(gguf_path, what, stats);
    } else {
      const std::string& name = targets[m.below(targets.size())];
      Bytes data = hf_files[name];
      std::string what;
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0) {
        const size_t header_end = std::min(data.size(), 8 + u64_at(data, 0));
        what = "safetensors " + (m.chance(50) ? m.json(data, 8, header_end) : m.binary(data, header_end));
      } else {
        what = name + " " + m.json(data, 0, data.size());
      }
      write_file(hf_dir + "/" + name, data);
      ok = try_load(hf_dir, what, stats);
      if (ok) write_file(hf_dir + "/" + name, hf_files[name]);  // a failure keeps its input
    }
    if (!ok) return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz_model: %zu iterations in %.2f s (seed %llu): %zu loaded, %zu ilm::Error\n", iterations, secs,
              static_cast<unsigned long long>(seed), stats.loaded, stats.errors);
  for (const auto& [what, n] : stats.by_mutation) std::printf("  %-28s %zu\n", what.c_str(), n);
  for (const std::string& s : stats.samples) std::printf("  e.g. %s\n", s.c_str());
  return 0;
}
