#pragma once
// The kNN classifier's bank (probe/knn.h): the pooled features of the probe's training
// images, gathered from every rank so each rank compares its share of probe.val with all of
// them. Internal to src/probe.
#include <memory>

#include "aim/data/loader.h"
#include "aim/dist/communicator.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/knn.h"

namespace aim::probe::detail {

/// Pooled features and labels of one pass over `loader` (this rank's share), on the device.
struct Rows {
  torch::Tensor features, labels;
};
Rows pooled_pass(FeatureExtractor& fx, data::Loader& loader, int64_t classes, const std::string& split);

/// Every rank's rows concatenated in rank order (padded for the all-gather, then trimmed).
Rows gather_rows(const Rows& mine, dist::Communicator* comm);

/// A classifier over every rank's rows.
std::unique_ptr<KnnClassifier> make_knn(const Rows& mine, int64_t classes, int64_t k, double temperature,
                                        dist::Communicator* comm);

}  // namespace aim::probe::detail
