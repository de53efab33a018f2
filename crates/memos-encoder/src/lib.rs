//! The arithmetic of memos' embedders: a BERT encoder's forward pass ([`Encoder`]) whose
//! dense layers run in f32 or in 8 bits ([`QLinear`]) on the fastest [`Kernel`] the CPU has.
//!
//! Why a crate of its own: this is the code every embedding spends its time in, and the
//! tests run the real models through it. As part of `memos-core` it compiled unoptimized
//! in test builds, where the 8-bit kernels' intrinsics stay function calls and a query took
//! half a second; the workspace's `Cargo.toml` compiles this crate optimized in every
//! profile, which costs a few seconds of build, not the rest of the domain's.
//!
//! It knows nothing of memories, tokenizers or pooling: `memos-core`'s `embed` module owns
//! those and calls [`Encoder::hidden_states`].

mod encoder;
mod int8;
mod math;

pub use encoder::Encoder;
pub use int8::{Kernel, QLinear};
