//! What every command that writes shares, so that nothing a user owns is lost or torn:
//! one writer per output ([`lock`]), durable atomic writes ([`atomic`]), cleanup of what
//! killed runs left behind ([`leftovers`]), claiming an output directory ([`outdir`]) and
//! content digests ([`fingerprint`]).
pub mod atomic;
pub mod fingerprint;
pub mod leftovers;
pub mod lock;
pub mod outdir;
