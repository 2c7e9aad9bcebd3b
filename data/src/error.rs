use thiserror::Error;

/// Everything that can go wrong in the dataset layer. Messages are one line and name the
/// offending file, field or value, because the CLI prints them as they are.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: no such file")]
    Missing { path: String },
    #[error("{path}: not a readable HDF5 file ({reason})")]
    NotHdf5 { path: String, reason: String },
    #[error("{path}: schema is {found:?}, expected \"mfpipe/1\"")]
    WrongSchema { path: String, found: String },
    #[error("{path}: missing {what}")]
    MissingField { path: String, what: String },
    #[error("{path}: {what} has shape {found:?}, expected {expected:?}")]
    Shape {
        path: String,
        what: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
    #[error("{path}: fidelity {level} has {pending} of {total} samples not yet computed (status 2); finish it with `pipeline generate ... --resume`")]
    Incomplete {
        path: String,
        level: usize,
        pending: usize,
        total: usize,
    },
    #[error("{path}: {reason}")]
    Hdf5 { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("design: {0}")]
    Design(String),
    #[error("split: {0}")]
    Split(String),
    #[error("{0}")]
    Numeric(String),
}
