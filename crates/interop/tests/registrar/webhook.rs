//! `mode = "webhook"` end to end.
