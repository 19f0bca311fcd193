//! tape autograd
