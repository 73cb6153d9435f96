#pragma once
// A LoRA run's adaptation as a Hugging Face peft adapter (adapter_config.json +
// adapter_model.safetensors; PeftModel.from_pretrained(base, DIR) loads it on the official
// AIM module tree). loralib adapts only the q and v slices of the fused qkv projection with
// rank r each; peft adapts whole Linear modules, so those two slices become one rank-2r LoRA
// on `qkv`: lora_A = [A_q; A_v] (2r x d) and a block-structured lora_B (3d x 2r) whose q rows
// hold [B_q, 0], k rows zero and v rows [0, B_v]. Its peft scaling alpha'/2r must equal
// loralib's alpha/r, so alpha' = 2 alpha (peft's alpha_pattern); `proj` keeps rank r and alpha.
// B A is then exactly loralib's update, so the adapted weights are identical.
#include <string>

#include "aim/io/safetensors.h"
#include "aim/model/aim_encoder.h"

namespace aim::probe {

/// adapter_model.safetensors' tensors (peft's names: base_model.model.<module>.lora_A.weight,
/// float32) for every adapted attention of `encoder`.
io::NamedTensors peft_adapter_tensors(const model::AimEncoder& encoder);

/// adapter_config.json's text for `encoder`'s LoRA (rank and alpha from its attentions):
/// target_modules a regex of the trunk's attention projections, rank_pattern / alpha_pattern
/// for the fused qkv.
std::string peft_adapter_config(const model::AimEncoder& encoder, const std::string& base_model);

/// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors. Throws aim::Error when
/// the encoder carries no LoRA.
void write_peft_adapter(const std::string& dir, const model::AimEncoder& encoder, const std::string& base_model);

}  // namespace aim::probe
