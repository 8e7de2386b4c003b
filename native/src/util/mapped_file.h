#pragma once
// A whole file in memory, read-only: mapped (the kernel pages it in on demand, nothing is copied)
// or read into anonymous memory backed by transparent huge pages. Streaming a multi-GB mapping
// pays a page walk every 4 KiB; in a VM (nested paging) that capped decode at 2-5 GB/s where huge
// pages stream at 23-28 GB/s (bench/RESULTS.md), so the CPU backend prefers the copy when it fits.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ilm {

class MappedFile {
 public:
  // Throws ilm::Error naming the path and the cause (missing, a directory, no permission, empty,
  // not a regular file, mapping failed).
  enum class Residency { Mapped, Ram };
  static std::shared_ptr<MappedFile> open(const std::string& path, Residency residency = Residency::Mapped);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool in_ram() const { return in_ram_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size, size_t mapped_bytes, bool in_ram)
      : path_(std::move(path)), data_(data), size_(size), mapped_bytes_(mapped_bytes), in_ram_(in_ram) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
  size_t mapped_bytes_;  // what munmap releases (the copy is rounded up to whole huge pages)
  bool in_ram_;
};

}  // namespace ilm
