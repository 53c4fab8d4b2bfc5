//! The quiesce cycle (SPEC §2).
#![deny(missing_docs)]
