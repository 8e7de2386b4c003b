#pragma once
// A whole file mapped read-only into memory. Weight files are tens of gigabytes: they are never
// copied into the heap; the kernel pages them in on demand.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ilm {

class MappedFile {
 public:
  // Throws ilm::Error naming the path and the cause (missing, a directory, no permission, empty,
  // not a regular file, mapping failed).
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace ilm
