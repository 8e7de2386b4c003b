#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
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
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(errno));
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size));
}

MappedFile::~MappedFile() { ::munmap(const_cast<uint8_t*>(data_), size_); }

}  // namespace ilm
