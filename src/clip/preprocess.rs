//! CLIP image preprocessing (stub)
