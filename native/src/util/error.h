#pragma once
// Every error a user can cause is an ilm::Error with a message that names the cause;
// the Node binding turns it into a JS exception.
#include <stdexcept>
#include <string>

namespace ilm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown when a cancellation flag is seen between prefill chunks or decode steps.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

}  // namespace ilm
