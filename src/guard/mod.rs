//! Refusals and safety nets around a training run, each a small hook in the loop:
//! nothing non-finite is ever written ([`finite`]), a resume repeats the run it
//! continues ([`resume`]), data that cannot teach anything is refused ([`learnable`]),
//! memory is estimated before it is allocated ([`memory`]), a new word never redefines
//! an old one ([`new_words`]), and a stopped run says where
//! its last good state is ([`stop`]).
pub mod finite;
pub mod learnable;
pub mod memory;
pub mod new_words;
pub mod resume;
pub mod stop;
