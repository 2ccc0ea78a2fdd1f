//! The Nexmark benchmark on Superflow.
//!
//! [`source`] generates Nexmark events in parallel with the `nexmark` crate;
//! [`queries`] holds q0–q9, q11 and q12 written with the DataStream API. The bench binary
//! (`superflow-bench nexmark-qN`) runs them, and the tests check each query against a
//! plain computation over the same events.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod queries;
pub mod source;

pub use nexmark::event::{Auction, Bid, Event, Person};
pub use source::{event_stream, NexmarkSettings, NexmarkSource};
