//! Training pieces: the optimizer (more arrives with the training-loop issue).
mod adamw;

pub use adamw::AdamW;
