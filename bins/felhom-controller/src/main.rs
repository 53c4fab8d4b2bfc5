//! felhom-controller (skeleton; lands with issue 6).
fn main() {}
