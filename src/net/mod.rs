//! The network proxy of `proxy` mode (the engine follows): the allow list, [`Policy`].

pub mod policy;

pub use policy::{Policy, PolicyError};
