#pragma once

namespace aim::loss {

/// What the pre-training head regresses (spec §5.2): per-patch normalized pixels (the
/// paper's default) or raw pixels.
enum class TargetKind { kNormalizedPixels, kRawPixels };

}  // namespace aim::loss
