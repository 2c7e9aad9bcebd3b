//! The mfpipe experiment layer as a library: datasets (generate, resume, merge, isolate),
//! jobs (splits, fits, scores, searches), studies (the protocol, sensitivity, searchers,
//! trade-off, RBF) and exporters (results.json, report.md, plots). The `pipeline` binary
//! parses arguments ([`cli`]) and calls [`commands`].
//!
//! Imports flow one way: `util`, `config` and `progress` are leaves; `generate` and
//! `isolate` are the dataset layer; `experiment` and `tuning` run fits; the studies build on
//! them; `report` and `plots` export what studies return; `commands` orchestrates.

pub mod cli;
pub mod commands;
pub mod config;
pub mod experiment;
pub mod export;
pub mod fitlog;
#[cfg(test)]
mod fuzz;
pub mod generate;
pub mod isolate;
pub mod multistage;
pub mod plots;
pub mod progress;
pub mod rbf_study;
pub mod report;
pub mod saved;
pub mod studies;
pub mod tradeoff;
pub mod tuning;
pub mod util;
