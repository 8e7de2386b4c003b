#include "util/host_memory.h"

#include <fstream>
#include <string>

#include "util/error.h"

namespace ilm {

uint64_t host_memory_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  throw Error("cannot read MemAvailable from /proc/meminfo");
}

}  // namespace ilm
