//! `cliptune bench`: whole workloads (`--workload`, workload.rs) against PyTorch, and
//! single kernels (`--kernel`, kernel.rs) at CLIP's shapes on any device.
mod budget;
mod gpu_timer;
pub mod kernel;
mod workload;

pub use budget::HostBudget;
pub use workload::*;
