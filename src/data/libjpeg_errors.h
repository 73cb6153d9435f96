#pragma once
// Internal to src/data: the libjpeg error manager our direct libjpeg decoders share. Errors
// longjmp back to the caller's setjmp with the message kept; warnings are counted, and the
// one that says the data ended early (libjpeg then pads the image with gray) is flagged.
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
};

[[noreturn]] inline void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

inline void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
    reinterpret_cast<JpegErrors*>(cinfo->err)->premature_end = true;
}

/// Points cinfo at `err` with the handlers above.
inline void use_jpeg_errors(jpeg_decompress_struct& cinfo, JpegErrors& err) {
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_on_error;
  err.pub.emit_message = jpeg_on_message;
}

}  // namespace aim::data::detail
