//! Parameters: named tensors that are either trainable or frozen.
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tensor::Tensor;

/// Process-unique id of a parameter; gradients are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u64);

impl ParamId {
    pub fn fresh() -> ParamId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ParamId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Clone, Debug)]
pub struct Param {
    pub id: ParamId,
    pub name: String,
    pub value: Tensor,
    /// Frozen parameters never get a gradient buffer or a dW matmul.
    pub trainable: bool,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Tensor, trainable: bool) -> Param {
        Param {
            id: ParamId::fresh(),
            name: name.into(),
            value,
            trainable,
        }
    }
    pub fn frozen(name: impl Into<String>, value: Tensor) -> Param {
        Self::new(name, value, false)
    }
    pub fn trainable(name: impl Into<String>, value: Tensor) -> Param {
        Self::new(name, value, true)
    }
}
