//! `mode = "reconcile"` end to end (filled in with the mode).
