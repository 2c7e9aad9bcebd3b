//! The command line's arguments (clap). DESIGN sec. 4 is the contract; `commands` runs them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pipeline",
    version,
    about = "mfpipe: multi-fidelity physics surrogates from solver to report"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// List problems, their inputs and fidelity levels.
    #[command(after_help = "Example:\n  pipeline list")]
    List,
    /// List models: the sources each takes, its hyperparameters and default search space.
    #[command(after_help = "Example:\n  pipeline models")]
    Models,
    /// Solve one problem at one fidelity.
    #[command(after_help = "Example:\n  pipeline solve burgers --fidelity 1 --set nu=0.01 --json")]
    Solve(SolveArgs),
    /// Generate a multi-fidelity HDF5 dataset.
    #[command(
        after_help = "Examples:\n  pipeline generate burgers --levels 0,1 --n 32,160 --design sobol --seed 0 --out burgers.h5\n  pipeline generate burgers --levels 0,1 --n 32,160 --out burgers.h5 --resume   # after an interruption\n  pipeline generate burgers --levels 0,1 --n 32,160 --shard 3/16 --out shard-3.h5"
    )]
    Generate(GenerateArgs),
    /// Combine the shard files of one run into one dataset.
    #[command(after_help = "Example:\n  pipeline merge shard-*.h5 --out burgers.h5")]
    Merge(MergeArgs),
    /// Validate a dataset and summarise it; optionally compare its content with another.
    #[command(after_help = "Example:\n  pipeline check burgers.h5 --same-as other.h5")]
    Check(CheckArgs),
    /// Train and evaluate fusion models on a dataset.
    #[command(
        after_help = "Examples:\n  pipeline train burgers.h5 --model nn-hf,dmf-trans,ar --n-hf 4,8,16,32 --n-lf 32 --seeds 0-4 --out out/b\n  pipeline train poisson.h5 --model ar,nar --levels 0,1,2 --n 32,16,8"
    )]
    Train(TrainArgs),
    /// Generate (if missing), train, evaluate and report, from one config.
    #[command(
        after_help = "Examples:\n  pipeline run burgers                 # the embedded configs/burgers.toml, into out/burgers\n  pipeline run burgers --smoke         # the same at a size that takes seconds\n  pipeline run poisson --config my.toml --out out/p --save best"
    )]
    Run(RunArgs),
    /// Predict with a saved model (from `train` or `run`, under <out>/models/): one point
    /// from --set, printed, or every row of --inputs, written to --out.
    #[command(
        after_help = "Examples:\n  pipeline predict out/burgers/models/best --set nu=0.02 --json\n  pipeline predict out/burgers/models/best --inputs points.csv --out pred.h5"
    )]
    Predict(PredictArgs),
    /// Measure per-sample solve cost at every fidelity level (markdown table on stdout).
    #[command(after_help = "Example:\n  pipeline bench burgers --samples 128")]
    Bench(BenchArgs),
    /// Cost/accuracy trade-off: the fidelity ladder, budgeted fusion, Pareto front and a
    /// recommended LF/HF split per budget.
    #[command(
        after_help = "Examples:\n  pipeline tradeoff poisson\n  pipeline tradeoff poisson --budget 0.01,0.05 --costs 1e-4,8e-4 --smoke"
    )]
    Tradeoff(TradeoffArgs),
    /// The gradient-only paper's study: which RBF surrogates (values, values + gradients,
    /// gradients only) of a mini-batch loss come out positive definite.
    #[command(after_help = "Example:\n  pipeline rbf-study --smoke")]
    RbfStudy(RbfStudyArgs),
    /// Read a dataset and exit 0 (read), 1 (error) or die with libhdf5: the child side of
    /// `isolate::read`.
    #[command(name = "probe-read", hide = true)]
    ProbeRead {
        path: PathBuf,
        /// Read everything but the output and extras values (`isolate::read_head`).
        #[arg(long)]
        head: bool,
    },
}

#[derive(Args)]
pub struct TradeoffArgs {
    /// Problem name (see `pipeline list`).
    pub problem: String,
    /// Config file (default: the problem's embedded configs/<problem>.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Total budgets in CPU-seconds, comma-separated (default: the config's [tradeoff]
    /// budgets, 8 to 64 HF samples' worth).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub budget: Option<Vec<String>>,
    /// Per-sample costs c_L,c_H in seconds instead of the measured or recorded ones (to
    /// reproduce a study exactly on another machine).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub costs: Option<Vec<String>>,
    /// Fusion models fitted on every split, comma-separated (default: the config's,
    /// mf-transfer,dmf-trans; `pipeline models` lists them).
    #[arg(long, alias = "model", value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Output directory (default: out/<problem>-tradeoff).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tiny sizes: the whole study in seconds.
    #[arg(long)]
    pub smoke: bool,
}

#[derive(Args)]
pub struct RbfStudyArgs {
    /// Output directory (default: out/rbf-study).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Three shape parameters, one draw, batch sizes 3 and full: seconds.
    #[arg(long)]
    pub smoke: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Problem name (see `pipeline list`).
    pub problem: String,
    /// Samples per level (a Sobol design over the inputs, seed 0).
    #[arg(long, default_value_t = 64)]
    pub samples: usize,
    /// Comma-separated levels (default: all).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<String>>,
}

#[derive(Args)]
pub struct SolveArgs {
    /// Problem name (see `pipeline list`).
    pub problem: String,
    /// Level number or name (see `pipeline list`).
    #[arg(long, default_value = "0")]
    pub fidelity: String,
    /// NAME=VALUE; inputs not given take the centre of their range.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Run seed; the sample's seed derives from it and the inputs (stochastic solvers).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the solution as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Problem name (see `pipeline list`).
    pub problem: String,
    /// Take defaults from this config's [data] section (else the problem's embedded config).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Comma-separated fidelity levels, cheapest first.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<String>>,
    /// Comma-separated sample counts, one per level.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub n: Option<Vec<String>>,
    /// sobol, lhs, uniform or grid (default: the config's, sobol).
    #[arg(long)]
    pub design: Option<String>,
    /// Points per input of a grid design, e.g. 6x19 (the product is each level's n).
    #[arg(long)]
    pub grid: Option<String>,
    /// Design seed (default: the config's, 0). Same seed, same bytes.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<String>,
    /// Output file (default: <problem>.h5).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Finish an interrupted run of the same settings (harmless when there is none).
    #[arg(long)]
    pub resume: bool,
    /// Compute only shard I of N (0-based), e.g. 3/16; combine shards with `pipeline merge`.
    #[arg(long)]
    pub shard: Option<String>,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Shard files of one run, in any order.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The merged dataset (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CheckArgs {
    /// An mfpipe dataset (.h5).
    pub dataset: PathBuf,
    /// Also require the same content (all but cost_s and created) as this file.
    #[arg(long = "same-as")]
    pub same_as: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// An mfpipe dataset (.h5) with every sample computed.
    pub dataset: PathBuf,
    /// Comma-separated model names (`pipeline models` lists them; default: the config's).
    #[arg(long, alias = "models", value_delimiter = ',')]
    pub model: Vec<String>,
    /// Comma-separated HF (target) training sizes, e.g. 4,8,16,32 (default: the config's).
    #[arg(long = "n-hf", value_delimiter = ',', allow_negative_numbers = true)]
    pub n_hf: Option<Vec<String>>,
    /// Comma-separated LF (cheapest source) training sizes (default: the config's).
    #[arg(long = "n-lf", value_delimiter = ',', allow_negative_numbers = true)]
    pub n_lf: Option<Vec<String>>,
    /// Seeds as a list or range: 0-4 or 0,1,7.
    #[arg(long)]
    pub seeds: Option<String>,
    /// HF samples held out for testing (when the file has no role array).
    #[arg(long = "n-test", allow_negative_numbers = true)]
    pub n_test: Option<String>,
    /// Levels to train on, cheapest first, the last the target (e.g. 0,1,2); chain models
    /// (ar, nar) use every one. Default: the cheapest and the finest level in the file.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<String>>,
    /// Training samples from each of --levels (e.g. 32,16,8), instead of --n-lf/--n-hf.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub n: Option<Vec<String>>,
    /// Low-fidelity level (default: the cheapest in the file).
    #[arg(long = "lf-level")]
    pub lf_level: Option<usize>,
    /// High-fidelity level (default: the finest in the file).
    #[arg(long = "hf-level")]
    pub hf_level: Option<usize>,
    /// Model hyperparameters from this config's [models] section.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cap every training phase at this many epochs.
    #[arg(long = "max-epochs")]
    pub max_epochs: Option<usize>,
    /// Hyperparameter search for the tuned models: none, grid, random, median, sha or
    /// hyperband (default: the config's, hyperband).
    #[arg(long)]
    pub search: Option<String>,
    /// Output directory (default: out/<problem>-train).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the results of an earlier `train` in --out (refused by default).
    #[arg(long)]
    pub force: bool,
    /// Continue an interrupted `train` into the same --out: fits already finished are taken
    /// from its journal, not refitted (harmless when there is none).
    #[arg(long)]
    pub resume: bool,
    /// Which fitted models to keep under <out>/models/: all, best (per N_L, N_H: the lowest
    /// test RMSE) or none.
    #[arg(long, default_value = "all")]
    pub save: crate::experiment::Save,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A saved model: its directory (e.g. out/burgers/models/best) or its model.json.
    pub model: PathBuf,
    /// NAME=VALUE; inputs not given take the centre of the range the model was trained on.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Many points: a CSV file with a header of input names, or an mfpipe dataset of the
    /// same problem (the inputs of the model's target level).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Write the predictions (mean, and variance or samples where the model has them) to
    /// this HDF5 file, laid out for xarray.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// Print the prediction as one JSON object on stdout (the shape of `solve --json`).
    #[arg(long)]
    pub json: bool,
    /// Predict at inputs outside the range the model was trained on (refused by default).
    #[arg(long)]
    pub extrapolate: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// Problem name (see `pipeline list`).
    pub problem: String,
    /// Config file (default: the problem's embedded configs/<problem>.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory (default: out/<problem>, or out/<problem>-smoke).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tiny sizes from the config's [smoke] section: the whole pipeline in seconds.
    #[arg(long)]
    pub smoke: bool,
    /// Continue an interrupted run into the same --out: the dataset's finished samples and
    /// the finished searches and fits are kept, not recomputed (harmless when there is none).
    #[arg(long)]
    pub resume: bool,
    /// Which fitted models to keep under <out>/models/: all, best (per N_L, N_H: the lowest
    /// test RMSE) or none.
    #[arg(long, default_value = "all")]
    pub save: crate::experiment::Save,
}
