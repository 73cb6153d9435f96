#pragma once
// Shard lists as users write them: webdataset/img2dataset brace notation
// ("/data/{00000000..00019999}.tar"), several lists joined with "::", or shell globs.
//
// Only what the user wrote is ever a command or a URL: a name that a glob found on disk is a
// local file whatever it looks like ("pipe:rm -rf ~;.tar" found by "*.tar" is read as the
// file ./pipe:rm -rf ~;.tar, never run). And braces are expanded only where they ask for a
// shard range, as bash does it: "{a..b}" with integers, or "{x,y}" alternatives without
// spaces; any other braces ("f() { cat X; }", "${DIR}", awk's "{print}") are kept as written.
#include <string>
#include <vector>

namespace aim::data {

/// Expands one pattern: numeric ranges {a..b} (zero padded to the width of a, as
/// braceexpand does), alternatives {x,y,z}, nested and repeated groups. Groups that are
/// neither (no top-level comma, or whitespace inside) are left as written. No filesystem
/// access. Throws aim::Error on unbalanced braces or a malformed range ({0..x}), except in
/// a "pipe:" command, where unbalanced braces belong to the shell and are left alone.
std::vector<std::string> expand_braces(const std::string& pattern);

/// Splits a pattern at the "::" that join several lists (webdataset's convention), except
/// inside braces, square brackets (an IPv6 literal: "http://[::1]:8080/{0..9}.tar") or
/// quotes (shell code in a "pipe:" command).
std::vector<std::string> split_shard_lists(const std::string& pattern);

/// Expands every pattern (split_shard_lists, then expand_braces), then any shell glob
/// characters (* ? [) of local paths against the filesystem ("pipe:" commands and http(s)
/// URLs are kept as written). A relative name found by a glob that would read as a command
/// or a URL gets "./" in front: it stays the local file it is. Order is kept; duplicates are
/// removed.
std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns);

}  // namespace aim::data
