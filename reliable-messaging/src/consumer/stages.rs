//! The stages a batch goes through, in order, each a type in its own file:
//!
//! 1. [`Poll`] gathers the next batch while the handler works on the current one, and lets the
//!    handler prepare it (`poll.rs`);
//! 2. [`Handle`] asks the handler for each message's outcome, retries transient failures in
//!    place (`handle.rs`) and rides out a dependency outage with [`RideOut`] (`outage.rs`);
//!    A message for a newer consumer stops its partition there ([`WaitForNewer`], `newer.rs`);
//! 3. [`Settle`] counts the outcomes, hands failures to the dead-letter topic and stops where
//!    the flood guard says so (`settle.rs`);
//! 4. [`Commit`] commits what is durable (`commit.rs`);
//! 5. [`Halt`], only when the flood guard tripped: stop, say why, keep the group (`halt.rs`).
//!
//! [`ReliableConsumer::run`](super::ReliableConsumer::run) calls them in that order. The pure
//! decisions of each stage are functions next to it, unit-tested there.

mod commit;
mod halt;
mod handle;
mod newer;
mod outage;
mod poll;
mod settle;

pub(crate) use commit::Commit;
pub(crate) use halt::Halt;
pub(crate) use handle::Handle;
pub(crate) use newer::WaitForNewer;
pub(crate) use outage::RideOut;
pub(crate) use poll::{HandlerState, Poll};
pub(crate) use settle::{Settle, Settled};
