//! Tape autograd. A forward pass records one [`Op`](ops) per call on a [`Tape`];
//! `backward` walks the tape in reverse and returns gradients for trainable
//! parameters only.
//!
//! What keeps it cheap (DESIGN.md rules):
//! - Only ops with an input that needs a gradient are recorded; a frozen base with no
//!   trainable parameter below a layer records nothing for that layer.
//! - Each op saves only what its backward will use for the inputs that need a
//!   gradient: a frozen Linear weight gets no dW matmul and its input activation is
//!   not kept; saved tensors are dropped as soon as their node has been processed.
//! - [`Tape::checkpoint`] recomputes a block in backward instead of keeping its
//!   activations (trade compute for memory).
mod ops;
mod param;
mod tape;

pub use param::{Param, ParamId};
pub use tape::{Grads, Tape, Var};
