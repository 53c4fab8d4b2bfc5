//! The development agent (skeleton; lands with issue 4).
#![deny(missing_docs)]
