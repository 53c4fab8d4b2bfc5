//! The status endpoint's tests, by concern: what the page shows (`page`), how the endpoint
//! serves (`serving`).

mod page;
mod serving;
