//! The whole decision for one request: classify, then authorize. Pure.
