#pragma once
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "aim/io/safetensors.h"

namespace aim::io {

/// Parameters then buffers with their dotted PyTorch names ("trunk.blocks.0.attn.qkv.weight").
NamedTensors state_dict(const torch::nn::Module& module);

/// Only the entries whose names start with one of `prefixes` (all when empty).
NamedTensors filter_prefixes(const NamedTensors& tensors, const std::vector<std::string>& prefixes);

/// Copies `tensors` into `module` by name (dtype converted, shape exact). Names are
/// compared within `prefixes` (all names when empty): anything missing, unexpected or of
/// the wrong shape is listed in one aim::Error naming `source` — never a partial load.
/// Entries outside `prefixes` are ignored (e.g. an official checkpoint's `head.*` when
/// loading only the trunk).
void load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                     const std::vector<std::string>& prefixes = {});

/// load_state_dict's checks alone: throws the same aim::Error, changes nothing.
void check_state_dict(const torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                      const std::vector<std::string>& prefixes = {});

/// A tensor's shape as error messages print it: "[768, 3, 14, 14]".
std::string shape_string(const torch::Tensor& t);

}  // namespace aim::io
