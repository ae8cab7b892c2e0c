//! Scenario and conformance suites for seawall over real loopback HTTP.
//!
//! The suites live in this package's integration-test targets as they are written; the
//! library target holds their shared support code.
