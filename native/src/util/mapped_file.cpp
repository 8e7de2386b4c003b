#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <cstring>

#include "util/error.h"

namespace ilm {

namespace {

// Closes the descriptor on every path out of open(); the mapping stays valid without it.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string open_error(const std::string& path, int err) {
  switch (err) {
    case ENOENT: return "file not found: " + path;
    case EACCES:
    case EPERM: return "permission denied: " + path;
    case ENOTDIR: return "file not found: " + path + " (a parent is not a directory)";
    default: return "cannot open " + path + ": " + std::strerror(err);
  }
}

constexpr size_t kHugePage = size_t(2) << 20;

// The file's bytes in fresh anonymous memory aligned to (and advised as) huge pages, read with
// pread so the page cache's copy never counts in this process's RSS. nullptr when the memory
// cannot be had (the caller maps the file instead); throws when the file cannot be read.
uint8_t* read_into_huge_pages(int fd, const std::string& path, size_t size, size_t* mapped_bytes) {
  const size_t bytes = (size + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = ::mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  // Trim to a huge-page-aligned range: only aligned 2 MiB ranges can be mapped by one TLB entry.
  auto* base = static_cast<uint8_t*>(raw);
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
  if (aligned > base) ::munmap(base, size_t(aligned - base));
  const size_t tail = size_t(base + bytes + kHugePage - (aligned + bytes));
  if (tail) ::munmap(aligned + bytes, tail);
#ifdef MADV_HUGEPAGE
  ::madvise(aligned, bytes, MADV_HUGEPAGE);
#endif
  // One reader: in this VM, filling fresh huge pages is bound by the host (4.7 GB: 5.2 s on one
  // thread, 8.8 s on two).
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, aligned + done, std::min<size_t>(size - done, size_t(64) << 20), off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::munmap(aligned, bytes);
      if (n == 0) throw Error(path + " shrank while it was being read (" + std::to_string(done) + " of " + std::to_string(size) + " bytes)");
      throw Error("cannot read " + path + ": " + std::strerror(err));
    }
    done += size_t(n);
  }
  ::mprotect(aligned, bytes, PROT_READ);  // as read-only as the mapping would be
  *mapped_bytes = bytes;
  return aligned;
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, Residency residency) {
  // O_NONBLOCK: opening a FIFO must not hang; regular files ignore the flag.
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    if (errno == EISDIR) throw Error(path + " is a directory, expected a file");
    throw Error(open_error(path, errno));
  }
  struct stat st;
  if (::fstat(f.fd, &st) != 0) throw Error("cannot stat " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path + " is a directory, expected a file");
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  if (st.st_size == 0) throw Error(path + " is empty (0 bytes)");
  const size_t size = size_t(st.st_size);
  if (residency == Residency::Ram) {
    size_t bytes = 0;
    if (uint8_t* copy = read_into_huge_pages(f.fd, path, size, &bytes))
      return std::shared_ptr<MappedFile>(new MappedFile(path, copy, size, bytes, true));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(errno));
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size, size, false));
}

MappedFile::~MappedFile() { ::munmap(const_cast<uint8_t*>(data_), mapped_bytes_); }

}  // namespace ilm
