//! mfpipe's shared vocabulary and dataset layer.
//!
//! Everything here is independent of any solver or model: the description of a problem's
//! inputs, fidelities and output grid ([`vocab`]), experimental designs ([`design`]),
//! splits ([`split`]), standardisation and PCA ([`transform`]), accuracy metrics
//! ([`metrics`]) and, behind the default `hdf5` feature, the `mfpipe/1` HDF5 schema with a
//! crash-safe, resumable writer ([`h5`], [`journal`]).
//!
//! The `solvers` crate depends on this crate with `default-features = false`, so physics
//! code never links HDF5.

pub mod design;
pub mod error;
pub mod metrics;
pub mod split;
pub mod transform;
pub mod vocab;

#[cfg(feature = "hdf5")]
pub mod dataset;
#[cfg(feature = "hdf5")]
pub mod h5;
#[cfg(feature = "hdf5")]
pub mod journal;

pub use error::DataError;
pub use vocab::{
    sample_seed, Axis, ExtraSpec, Fidelity, InputSpec, NoProgress, OutputSpec, ProblemSpec,
    Progress, Scale,
};

/// The schema tag written into (and required from) every dataset file.
pub const SCHEMA: &str = "mfpipe/1";
