//! `pipeline tradeoff`: the ladder stored in the dataset, budgets respected, reruns
//! reproducible from the recorded costs, bad arguments refused.

use mfpipe_data::h5;
use mfpipe_tests::{pipeline, stderr};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tradeoff_stores_the_ladder_respects_budgets_and_reruns_identically() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(d.path(), &["tradeoff", "burgers", "--smoke", "--out", "t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.path().join("t");
    for f in [
        "tradeoff.json",
        "results.json",
        "ladder.png",
        "budget.png",
        "report.md",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let s = json(&out.join("tradeoff.json"));
    // The ladder covers all five Burgers levels; errors shrink towards the reference level
    // and the cost grows.
    let ladder = s["ladder"].as_array().unwrap();
    assert_eq!(ladder.len(), 5);
    let err: Vec<f64> = ladder
        .iter()
        .map(|r| r["error_rmse"].as_f64().unwrap())
        .collect();
    let cost: Vec<f64> = ladder
        .iter()
        .map(|r| r["cost_median_s"].as_f64().unwrap())
        .collect();
    assert!(err.windows(2).all(|w| w[1] < w[0]), "{err:?}");
    assert_eq!(err[4], 0.0);
    assert!(cost[4] > cost[0]);
    // First-order scheme: error ratios of about 2 between the coarse levels.
    let order = ladder[0]["order"].as_f64().unwrap();
    assert!((0.7..1.4).contains(&order), "order {order}");
    // Every split stays within its budget, and the HF-only baseline is there.
    let (c_l, c_h) = (
        s["cost_lf_s"].as_f64().unwrap(),
        s["cost_hf_s"].as_f64().unwrap(),
    );
    for p in s["points"].as_array().unwrap() {
        let (nl, nh) = (p["n_lf"].as_f64().unwrap(), p["n_hf"].as_f64().unwrap());
        assert!(nl * c_l + nh * c_h <= p["budget_s"].as_f64().unwrap() * (1.0 + 1e-12));
    }
    assert!(s["points"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["model"] == "nn-hf" && p["n_lf"] == 0));
    assert_eq!(s["recommendation"].as_array().unwrap().len(), 2);
    assert!(s["points"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pareto"] == true));
    // The dataset carries the ladder of the levels it holds.
    let ds = h5::read(&out.join("burgers.h5")).unwrap();
    for l in &ds.levels {
        let keys: Vec<&str> = l.settings.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"ladder_cost_median_s") && keys.contains(&"ladder_error_rmse"));
    }
    // A rerun plans with the recorded costs: the same splits and bit-identical errors.
    let o = pipeline(d.path(), &["tradeoff", "burgers", "--smoke", "--out", "t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = json(&out.join("tradeoff.json"));
    assert_eq!(again["cost_hf_s"], s["cost_hf_s"]);
    let rmse = |v: &serde_json::Value| -> Vec<String> {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {}",
                    p["model"], p["n_lf"], p["n_hf"], p["rmse_mean"]
                )
            })
            .collect()
    };
    assert_eq!(rmse(&again), rmse(&s));
    assert!(again["costs_from"].as_str().unwrap().contains("recorded"));
}

#[test]
fn tradeoff_runs_for_poisson_with_given_costs_and_refuses_bad_budgets() {
    let d = tempfile::tempdir().unwrap();
    let o = pipeline(
        d.path(),
        &[
            "tradeoff",
            "poisson",
            "--smoke",
            "--costs",
            "1e-4,8e-4",
            "--out",
            "p",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&d.path().join("p/tradeoff.json"));
    assert_eq!(s["cost_lf_s"], 1e-4);
    assert_eq!(s["hf_level"], 2);
    // Budgets of 8 and 16 HF samples at the given costs.
    let b: Vec<f64> = s["budgets_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(b, [8.0 * 8e-4, 16.0 * 8e-4]);
    for (args, needle) in [
        (vec!["--budget", "-1"], "--budget"),
        (vec!["--costs", "1e-4"], "--costs takes two numbers"),
        (vec!["--budget", "1e-9"], "no budget buys 2 HF samples"),
        (vec!["--models", "kriging"], "unknown model"),
    ] {
        let mut a = vec!["tradeoff", "poisson", "--smoke", "--out", "q"];
        a.extend(args);
        let o = pipeline(d.path(), &a);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains(needle) && e.lines().count() == 1, "{e}");
    }
}
