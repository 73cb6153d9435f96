#pragma once
// Shard lists as users write them: webdataset/img2dataset brace notation
// ("/data/{00000000..00019999}.tar"), several lists joined with "::", or shell globs.
#include <string>
#include <vector>

namespace aim::data {

/// Expands one pattern: numeric ranges {a..b} (zero padded to the width of a, as
/// braceexpand does), alternatives {x,y,z}, nested and repeated groups. No filesystem access.
/// Throws aim::Error on unbalanced braces or a malformed range.
std::vector<std::string> expand_braces(const std::string& pattern);

/// Expands every pattern (each may hold several "::"-separated lists), then any shell glob
/// characters (* ? [) of local paths against the filesystem ("pipe:" commands and http(s)
/// URLs are kept as written). Order is kept; duplicates are removed.
std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns);

}  // namespace aim::data
