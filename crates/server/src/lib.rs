//! The SPIRE server: signing authority and registry of one trust domain.

pub mod catalog;
