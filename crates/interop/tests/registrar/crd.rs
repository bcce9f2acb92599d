//! `mode = "crd"` end to end (filled in with the mode).
