#pragma once
#include <stdexcept>
#include <string>

namespace aim {

/// Thrown for bad user input (config keys, files, weights). The message names the
/// offending key/file and what was expected; tools print it and exit non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace aim
