#pragma once
// TensorBoard event files: TFRecord framing with masked CRC-32C around protobuf Event
// records (TensorBoard's own message definitions, proto/tensorboard/), written append-only
// and flushed per call so a live TensorBoard sees every step and a crash loses at most the
// record being written.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace aim::io {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `n` bytes; crc32c("123456789")
/// is 0xE3069283.
uint32_t crc32c(const void* data, size_t n);

/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so a CRC stored inside
/// CRC-protected data does not checksum to a fixed pattern.
uint32_t masked_crc32c(const void* data, size_t n);

/// One TFRecord: uint64 length (little-endian), masked CRC of those 8 bytes, the data,
/// masked CRC of the data.
std::string tfrecord(const std::string& data);

/// The records of a TFRecord file in order, up to the first one that is incomplete or fails
/// a CRC (the torn tail a crash leaves). `clean` (optional) tells whether the whole file was
/// read.
std::vector<std::string> read_tfrecords(const std::string& path, bool* clean = nullptr);

/// One scalar as stored: the event's step and wall time, the tag, the float value.
struct ScalarRecord {
  int64_t step = 0;
  double wall_time = 0;
  std::string tag;
  float value = 0;
};

/// The scalars of one event file (read_tfrecords' records, decoded).
std::vector<ScalarRecord> read_scalars(const std::string& path);

/// True for a TensorBoard event file name (TensorBoard reads every file whose name holds
/// "tfevents").
bool is_event_file(const std::string& filename);

/// Writes one new event file `<dir>/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>`
/// (dir created if missing); its first record is the file_version event "brain.Event:2".
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// One event at `step` holding every (tag, value) as a float scalar; flushed to the OS.
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  /// A SessionLog START event at `step`: a running TensorBoard drops the events it already
  /// holds at steps >= `step` (the tail of an interrupted run it read before the restart).
  void add_session_start(int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized);
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// Makes the event files in `dir` end at `step`, before a run that restarts from that step
/// writes again (resume after a crash; a probe run that starts over): every event with a
/// larger step (scalars, session starts) is dropped, each changed file rewritten atomically (a torn last record goes
/// too), a file left without scalars removed, and the temporaries of an interrupted rewrite
/// removed, so TensorBoard finds every step once. Returns the number of events dropped.
int64_t truncate_event_files(const std::string& dir, int64_t step);

}  // namespace aim::io
