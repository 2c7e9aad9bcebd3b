//! Shared fixtures of the data crate's integration tests.

use mfpipe_data::dataset::Meta;
use mfpipe_data::Axis;

/// A toy problem's metadata: inputs a in [0, 1] (m) and b in [-1, 1], one output axis x of
/// `points` points, output u.
pub fn toy_meta(points: usize) -> Meta {
    Meta {
        problem: "toy".into(),
        created: "2026-01-01T00:00:00Z".into(),
        generator: "test".into(),
        seed: 3,
        design: "sobol".into(),
        input_names: vec!["a".into(), "b".into()],
        input_units: vec!["m".into(), "1".into()],
        input_lower: vec![0.0, -1.0],
        input_upper: vec![1.0, 1.0],
        output_name: "u".into(),
        output_unit: "1".into(),
        shard: None,
        axes: vec![Axis {
            name: "x".into(),
            unit: "m".into(),
            values: (0..points).map(|k| k as f64 / points as f64).collect(),
        }],
    }
}
