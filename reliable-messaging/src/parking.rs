//! The parking lot: where messages that must not be retried any more wait for an operator.
