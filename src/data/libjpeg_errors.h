#pragma once
// Internal to src/data: the libjpeg error manager our direct libjpeg decoders share. Errors
// longjmp back to the caller's setjmp with the message kept; warnings that the data is damaged
// (libjpeg then decodes on, padding with gray or garbage) are flagged with their message.
#include <csetjmp>
#include <cstdio>

#include <jpeglib.h>
// after jpeglib.h, which it needs
#include <jerror.h>

namespace aim::data::detail {

struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_end = false;  // JWRN_JPEG_EOF: the file ended before the image did
  // A warning that the entropy-coded data is damaged: libjpeg decodes on, with gray or
  // garbage where the damage is (a cut file with FFD9 appended, zeroed bytes).
  bool corrupt = false;
  char corrupt_message[JMSG_LENGTH_MAX] = {};
};

/// The warnings that mean damaged pixels. Harmless ones (extraneous bytes between markers,
/// an unknown JFIF version, a bad ICC profile) are not among them: PIL accepts those files.
inline bool corrupt_data_warning(int code) {
  return code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_JPEG_EOF || code == JWRN_MUST_RESYNC ||
         code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION;
}

[[noreturn]] inline void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

inline void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->premature_end = true;
  if (corrupt_data_warning(cinfo->err->msg_code) && !err->corrupt) {
    err->corrupt = true;
    (*cinfo->err->format_message)(cinfo, err->corrupt_message);
  }
}

/// Points cinfo at `err` with the handlers above.
inline void use_jpeg_errors(jpeg_decompress_struct& cinfo, JpegErrors& err) {
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_on_error;
  err.pub.emit_message = jpeg_on_message;
}

}  // namespace aim::data::detail
