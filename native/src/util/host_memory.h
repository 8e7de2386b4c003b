#pragma once
#include <cstdint>

namespace ilm {

// MemAvailable from /proc/meminfo: RAM that can be had without swapping (free plus reclaimable
// page cache). Throws ilm::Error when it cannot be read.
uint64_t host_memory_available();

}  // namespace ilm
