//! Support for the end-to-end tests (skeleton; lands with issue 6).
